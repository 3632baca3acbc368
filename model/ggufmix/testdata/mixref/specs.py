import sys
def llama(f, L, dim, ff, vocab, heads, kv, tied=False, arch="llama", extra=()):
    hd = dim // heads
    print(f"{arch} {L} {heads} {kv} 0", file=f)
    print(f"token_embd.weight {dim} {vocab} 1 1", file=f)
    print(f"output_norm.weight {dim} 1 1 1", file=f)
    if not tied: print(f"output.weight {dim} {vocab} 1 1", file=f)
    for i in range(L):
        for n,a,b in [("attn_q",dim,dim),("attn_k",dim,hd*kv),("attn_v",dim,hd*kv),("attn_output",dim,dim),("attn_norm",dim,1),("ffn_gate",dim,ff),("ffn_down",ff,dim),("ffn_up",dim,ff),("ffn_norm",dim,1)]:
            print(f"blk.{i}.{n}.weight {a} {b} 1 1", file=f)
    for e in extra: print(e, file=f)
llama(open("stories260k.in","w"), 5, 64, 172, 512, 8, 4)
llama(open("llama7b.in","w"), 32, 4096, 11008, 32000, 32, 32)
# Llama 3 8B: GQA with 4 query heads per KV head (Q2_K's attn_v rule), no 70B rule
llama(open("llama3_8b.in","w"), 32, 4096, 14336, 128256, 32, 8)
llama(open("llama70b.in","w"), 80, 8192, 28672, 128256, 64, 8, extra=["rope_freqs.weight 64 1 1 1"])
# a small Llama whose shapes divide 256, with tied embeddings, and the edge cases of the quantize rule
llama(open("small.in","w"), 12, 256, 768, 1024, 4, 2, tied=True, extra=[
  "rope_freqs.weight 32 1 1 1", "position_embd.weight 256 64 1 1", "token_types.weight 256 2 1 1",
  "abcde 256 4 1 1", "abcdef 256 4 1 1", "blk.0.flat.weight 256 1 1 1", "blk.0.col.weight 1 256 1 1",
  "blk.0.attn_v.bias 256 1 1 1", "blk.0.four.weight 256 2 2 2", "blk.1.ffn_gate_inp.weight 256 8 1 1",
  "blk.2.attn_qkv.weight 256 768 1 1", "blk.3.odd_norm.weight 256 4 1 1", "blk.4.ffn_down.weight_x 256 4 1 1",
  "blk.12.ffn_down.weight 768 256 1 1", "blk.7.attn_v.lora_a.weight 16 256 1 1", "odd.weight 48 4 1 1", "odd2.weight 40 4 1 1"])
# Mixtral-like: 8 experts, 3-D expert tensors
f = open("moe.in","w")
L, dim, ff = 8, 512, 1536
print(f"llama {L} 8 2 8", file=f)
print(f"token_embd.weight {dim} 1000 1 1", file=f); print(f"output_norm.weight {dim} 1 1 1", file=f); print(f"output.weight {dim} 1000 1 1", file=f)
for i in range(L):
    for n,a,b,c in [("attn_q",dim,dim,1),("attn_k",dim,128,1),("attn_v",dim,128,1),("attn_output",dim,dim,1),("attn_norm",dim,1,1),("ffn_gate_inp",dim,8,1),("ffn_gate_exps",dim,ff,8),("ffn_down_exps",ff,dim,8),("ffn_up_exps",dim,ff,8),("ffn_norm",dim,1,1)]:
        print(f"blk.{i}.{n}.weight {a} {b} {c} 1", file=f)
f.close()
# Falcon-like: fused attn_qkv
f = open("falcon.in","w")
L, dim, ff = 16, 512, 2048
print(f"falcon {L} 8 1 0", file=f)
print(f"token_embd.weight {dim} 1000 1 1", file=f); print(f"output_norm.weight {dim} 1 1 1", file=f); print(f"output_norm.bias {dim} 1 1 1", file=f); print(f"output.weight {dim} 1000 1 1", file=f)
for i in range(L):
    for n,a,b in [("attn_norm.weight",dim,1),("attn_norm.bias",dim,1),("attn_qkv.weight",dim,dim+2*64),("attn_output.weight",dim,dim),("ffn_up.weight",dim,ff),("ffn_down.weight",ff,dim)]:
        print(f"blk.{i}.{n} {a} {b} 1 1", file=f)
f.close()
