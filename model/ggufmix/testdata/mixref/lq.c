// lq IN OUT FTYPE PURE: llama_model_quantize, as llama-quantize calls it.
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char ** argv) {
    if (argc != 5) { fprintf(stderr, "usage: lq IN OUT FTYPE PURE\n"); return 2; }
    llama_backend_init();
    struct llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = (enum llama_ftype) atoi(argv[3]);
    p.pure = atoi(argv[4]) != 0;
    p.nthread = 2;
    return (int) llama_model_quantize(argv[1], argv[2], &p);
}
