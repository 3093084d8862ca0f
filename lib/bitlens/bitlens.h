/* bitlens/bitlens.h: the whole public API of libbitlens.
 *
 *   common.h     status codes, bl_err, threads
 *   tensor.h     dtypes, tensors as views, f16/bf16 conversion
 *   gguf.h       GGUF reader and writer
 *   safetensors.h  safetensors reader (Hugging Face weights)
 *   tokenizer.h  SentencePiece-style BPE
 *   model.h      loading checkpoints (GGUF, llama2.c)
 *   ctx.h        the forward pass, KV cache and hook points
 *   sampler.h    greedy / temperature / top-k / top-p sampling
 *   hash.h       SHA-256
 *   trace.h      the trace file
 *   record.h     recording prompts into a trace; its records
 *
 * Link with `pkg-config --libs bitlens`.
 */
#ifndef BITLENS_BITLENS_H
#define BITLENS_BITLENS_H

#include <bitlens/common.h>
#include <bitlens/tensor.h>
#include <bitlens/gguf.h>
#include <bitlens/safetensors.h>
#include <bitlens/tokenizer.h>
#include <bitlens/model.h>
#include <bitlens/ctx.h>
#include <bitlens/sampler.h>
#include <bitlens/hash.h>
#include <bitlens/trace.h>
#include <bitlens/record.h>
#include <bitlens/analysis.h>
#include <bitlens/drafter.h>
#include <bitlens/drift.h>
#include <bitlens/train.h>

#endif
