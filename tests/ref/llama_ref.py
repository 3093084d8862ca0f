#!/usr/bin/env python3
"""Independent float64 reference for llama2.c checkpoints (tests only).

Written from the model's math and the llama2.c file layouts, in numpy
float64, sharing no code with bitlens: a second implementation to compare
bitlens' greedy text with on checkpoints for which no llama2.c output is
stored.  The test suite first checks this reference against llama2.c's own
greedy output for stories260K (golden/stories260K_greedy_n256.txt).

  llama_ref.py MODEL.bin TOKENIZER.bin PROMPT N

prints what `bitlens generate -m MODEL -z TOKENIZER -p PROMPT -n N -t 0`
should print: the prompt and N greedy tokens (fewer if BOS or EOS comes),
then a newline.
"""
import struct
import sys

import numpy as np


def load_model(path):
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // n_heads
    kv_dim = n_kv * head
    f = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        a = f[pos:pos + n].reshape(shape)
        pos += n
        return a

    w = {}
    w["emb"] = take(vocab, dim)
    w["att_norm"] = take(n_layers, dim)
    w["wq"] = take(n_layers, dim, dim)
    w["wk"] = take(n_layers, kv_dim, dim)
    w["wv"] = take(n_layers, kv_dim, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["ffn_norm"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["final_norm"] = take(dim)
    take(seq, head // 2)  # freq_cis_real (recomputed below)
    take(seq, head // 2)  # freq_cis_imag
    w["cls"] = w["emb"] if shared else take(vocab, dim)
    if pos != f.size:
        raise SystemExit(f"{path}: {4 * (f.size - pos)} unexplained bytes: not a legacy llama2.c file")
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, seq=seq, head=head)
    return cfg, w


def load_tokenizer(path, vocab_size):
    raw = open(path, "rb").read()
    off = 4
    pieces, scores = [], []
    for _ in range(vocab_size):
        score, n = struct.unpack_from("<fi", raw, off)
        off += 8
        pieces.append(raw[off:off + n])
        off += n
        scores.append(score)
    return pieces, scores


def encode(text, pieces, scores):
    """BOS, a dummy-prefix space, one symbol per UTF-8 character (bytes
    of characters missing from the vocabulary become byte tokens, id =
    byte + 3), then repeatedly merge the adjacent pair whose concatenation
    is the best-scoring piece (the first such pair on ties)."""
    index = {}
    for i, p in enumerate(pieces):
        index.setdefault(p, i)  # first occurrence, as a sorted-unique lookup finds one
    ids = [1]
    data = text.encode("utf-8")
    if data:
        ids.append(index[b" "])
    i = 0
    while i < len(data):
        j = i + 1
        while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        ch = data[i:j]
        if ch in index:
            ids.append(index[ch])
        else:
            ids.extend(b + 3 for b in ch)
        i = j
    while True:
        best, best_i = None, -1
        for k in range(len(ids) - 1):
            m = index.get(pieces[ids[k]] + pieces[ids[k + 1]])
            if m is not None and (best is None or scores[m] > scores[best]):
                best, best_i = m, k
        if best is None:
            break
        ids[best_i:best_i + 2] = [best]
    return ids


def rmsnorm(x, w):
    return w * (x / np.sqrt(np.mean(x * x) + 1e-5))


class Model:
    def __init__(self, cfg, w):
        self.c, self.w = cfg, w
        L, S, KV = cfg["n_layers"], cfg["seq"], cfg["n_kv"] * cfg["head"]
        self.k = np.zeros((L, S + 512, KV))
        self.v = np.zeros((L, S + 512, KV))

    def rope(self, x, n_heads, pos):
        hd = self.c["head"]
        x = x.reshape(n_heads, hd // 2, 2)
        j = np.arange(hd // 2)
        theta = pos * 10000.0 ** (-2.0 * j / hd)
        c, s = np.cos(theta), np.sin(theta)
        a, b = x[:, :, 0], x[:, :, 1]
        return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(-1)

    def forward(self, token, pos):
        c, w = self.c, self.w
        H, KVH, hd = c["n_heads"], c["n_kv"], c["head"]
        x = w["emb"][token].copy()
        for l in range(c["n_layers"]):
            h = rmsnorm(x, w["att_norm"][l])
            q = self.rope(w["wq"][l] @ h, H, pos)
            self.k[l, pos] = self.rope(w["wk"][l] @ h, KVH, pos)
            self.v[l, pos] = w["wv"][l] @ h
            z = np.zeros(H * hd)
            for hh in range(H):
                g = hh // (H // KVH)
                K = self.k[l, :pos + 1, g * hd:(g + 1) * hd]
                V = self.v[l, :pos + 1, g * hd:(g + 1) * hd]
                s = K @ q[hh * hd:(hh + 1) * hd] / np.sqrt(hd)
                a = np.exp(s - s.max())
                a /= a.sum()
                z[hh * hd:(hh + 1) * hd] = a @ V
            x = x + w["wo"][l] @ z
            h = rmsnorm(x, w["ffn_norm"][l])
            g1 = w["w1"][l] @ h
            x = x + w["w2"][l] @ ((g1 / (1.0 + np.exp(-g1))) * (w["w3"][l] @ h))
        return w["cls"] @ rmsnorm(x, w["final_norm"])


def piece_bytes(pieces, prev, tok):
    p = pieces[tok]
    if prev == 1 and p.startswith(b" "):
        p = p[1:]
    if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
        p = bytes([int(p[3:5], 16)])
    return p


def main():
    model, tokfile, prompt, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg, w = load_model(model)
    pieces, scores = load_tokenizer(tokfile, cfg["vocab"])
    ids = encode(prompt, pieces, scores)
    m = Model(cfg, w)
    out = bytearray()
    for i in range(1, len(ids)):
        out += piece_bytes(pieces, ids[i - 1], ids[i])
    logits = None
    for pos, t in enumerate(ids):
        logits = m.forward(t, pos)
    prev, pos = ids[-1], len(ids)
    for k in range(n):
        nxt = int(np.argmax(logits))
        if nxt in (1, 2):
            break
        out += piece_bytes(pieces, prev, nxt)
        if k == n - 1:
            break
        logits = m.forward(nxt, pos)
        prev, pos = nxt, pos + 1
    # print as bitlens does: printable ASCII, whitespace, and whole UTF-8
    # characters; other bytes are dropped
    text = out.decode("utf-8", errors="ignore")
    text = "".join(ch for ch in text
                   if ch.isprintable() or ch in "\t\n\r\x0b\x0c" or ord(ch) >= 0x80)
    sys.stdout.buffer.write(text.encode("utf-8") + b"\n")


if __name__ == "__main__":
    main()
