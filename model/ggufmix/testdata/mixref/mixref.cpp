// mixref: prints llama.cpp's per-tensor types (llama_quant_compute_types, the
// code llama-quantize runs) for a model described on stdin:
//   arch n_layer n_head n_head_kv n_expert
//   name ne0 ne1 ne2 ne3     (one line per tensor)
// Output: the model and tensors as given, "keep NAME" for each tensor llama-quantize
// leaves as it is, then for each mix, plain and --pure, "[MIX] BASE" and "NAME TYPE" for
// each quantized tensor whose type is not the base type, in llama-quantize's order.
#include "llama.h"
#include "llama-ext.h" // src/, not installed: a staging header of llama.cpp
#include "ggml.h"
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include <iostream>
#include <sstream>

int main() {
    std::string arch; unsigned n_layer, n_head, n_head_kv, n_expert;
    std::cin >> arch >> n_layer >> n_head >> n_head_kv >> n_expert;
    struct T { std::string name; long long ne[4]; };
    std::vector<T> ts; T t;
    while (std::cin >> t.name >> t.ne[0] >> t.ne[1] >> t.ne[2] >> t.ne[3]) ts.push_back(t);
    llama_quant_model_desc desc = {};
    desc.architecture = arch.c_str(); desc.n_embd = 64; desc.n_ff = 64; desc.n_layer = n_layer;
    desc.n_head = n_head; desc.n_head_kv = n_head_kv; desc.n_expert = n_expert;
    desc.n_embd_head_k = 8; desc.n_embd_head_v = 8;
    llama_model * model = llama_quant_model_from_metadata(&desc);
    struct ggml_init_params ip = { ts.size() * ggml_tensor_overhead() + 1024, nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    std::vector<ggml_tensor *> all;
    for (auto & x : ts) {
        ggml_tensor * g = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, x.ne[0], x.ne[1], x.ne[2], x.ne[3]);
        ggml_set_name(g, x.name.c_str());
        all.push_back(g);
    }
    struct { const char * name; llama_ftype ft; } mixes[] = {
        {"F32", LLAMA_FTYPE_ALL_F32}, {"F16", LLAMA_FTYPE_MOSTLY_F16}, {"BF16", LLAMA_FTYPE_MOSTLY_BF16},
        {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0}, {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1}, {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
        {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1}, {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0}, {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S},
        {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M},
        {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K}, {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K}, {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S},
        {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M}, {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L},
    };
    printf("model %s %u %u %u %u\n", arch.c_str(), n_layer, n_head, n_head_kv, n_expert);
    for (auto & x : ts) printf("tensor %s %lld %lld %lld %lld\n", x.name.c_str(), x.ne[0], x.ne[1], x.ne[2], x.ne[3]);
    for (int pure = 0; pure < 2; pure++) {
        llama_model_quantize_params qp = llama_model_quantize_default_params();
        qp.pure = pure;
        quantize_state_impl * qs = llama_quant_init(model, &qp);
        std::vector<ggml_tensor *> q;
        for (auto * g : all) {
            if (llama_quant_tensor_allows_quantization(qs, g)) q.push_back(g);
            else if (pure == 0) printf("keep %s\n", g->name);
        }
        std::sort(q.begin(), q.end(), [](const ggml_tensor * a, const ggml_tensor * b) {
            int al = -1, bl = -1;
            sscanf(a->name, "blk.%d.", &al); sscanf(b->name, "blk.%d.", &bl);
            if (al != bl) return al < bl;
            return strcmp(a->name, b->name) < 0;
        });
        for (auto & m : mixes) {
            std::vector<ggml_type> res(q.size());
            llama_quant_compute_types(qs, m.ft, q.data(), res.data(), q.size());
            ggml_type def = llama_ftype_get_default_type(m.ft);
            printf("[%s%s] %s\n", m.name, pure ? " pure" : "", ggml_type_name(def));
            for (size_t j = 0; j < q.size(); j++) {
                if (res[j] != def) printf("%s %s\n", q[j]->name, ggml_type_name(res[j]));
            }
        }
        llama_quant_free(qs);
    }
    return 0;
}
