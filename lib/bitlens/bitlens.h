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

#endif
