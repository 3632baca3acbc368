// llama-quantize-harness: llama.cpp's own GGUF → GGUF quantization, for the
// integration tests to compare quantkit's output against. It is the core of
// llama.cpp's tools/quantize without its extras: it dlopens libllama (the
// prebuilt one that node-llama-cpp ships), takes
// llama_model_quantize_default_params(), sets the file type by
// llama-quantize's name, the thread count and the flags below, and makes
// the one library call, llama_model_quantize(in, out, &params).
//
// usage: llama-quantize-harness [--lib LIBLLAMA] [--nthread N] [--pure]
//            [--leave-output-tensor] [--allow-requantize] IN.gguf OUT.gguf TYPE
//
// LIBLLAMA defaults to the libllama.so or libllama.v*.so in
// $QUANTKIT_LLAMACPP_LIB_DIR. Exit status 0 on success, 1 when llama.cpp
// refuses, 2 on a usage error.
//
// Built by scripts/integration/setup-llamacpp.sh against the llama.h of the
// release the library was built from (struct layouts must match).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

// llama-quantize's names (tools/quantize/quantize.cpp, QUANT_OPTIONS) for
// the file types quantkit makes or may make, with its aliases.
static const struct {
	const char *name;
	enum llama_ftype ftype;
} ftypes[] = {
	{"F32", LLAMA_FTYPE_ALL_F32},       {"F16", LLAMA_FTYPE_MOSTLY_F16},
	{"BF16", LLAMA_FTYPE_MOSTLY_BF16},  {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},
	{"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},  {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
	{"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},  {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
	{"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},  {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S},
	{"Q3_K", LLAMA_FTYPE_MOSTLY_Q3_K_M}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
	{"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L}, {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S},
	{"Q4_K", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},
	{"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"Q5_K", LLAMA_FTYPE_MOSTLY_Q5_K_M},
	{"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},
};

static const char *prog = "llama-quantize-harness";

static void usage(void) {
	fprintf(stderr,
	        "usage: %s [--lib LIBLLAMA] [--nthread N] [--pure] [--leave-output-tensor]\n"
	        "           [--allow-requantize] IN.gguf OUT.gguf TYPE\n"
	        "TYPE is one of llama-quantize's names:",
	        prog);
	for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++) fprintf(stderr, " %s", ftypes[i].name);
	fprintf(stderr, "\n");
	exit(2);
}

// findLib returns the libllama in $QUANTKIT_LLAMACPP_LIB_DIR, or NULL.
static char *findLib(void) {
	const char *dir = getenv("QUANTKIT_LLAMACPP_LIB_DIR");
	if (!dir || !*dir) return NULL;
	static const char *pats[] = {"%s/libllama.so", "%s/libllama.v*.so"};
	for (size_t i = 0; i < 2; i++) {
		char pat[4096];
		snprintf(pat, sizeof pat, pats[i], dir);
		glob_t g;
		if (glob(pat, 0, NULL, &g) == 0 && g.gl_pathc > 0) {
			char *p = strdup(g.gl_pathv[0]);
			globfree(&g);
			return p;
		}
		globfree(&g);
	}
	return NULL;
}

static void *sym(void *h, const char *lib, const char *name) {
	void *p = dlsym(h, name);
	if (!p) {
		fprintf(stderr, "%s: %s does not export %s: %s\n", prog, lib, name, dlerror());
		exit(1);
	}
	return p;
}

int main(int argc, char **argv) {
	const char *lib = NULL;
	int nthread = 1, pure = 0, leaveOutput = 0, requant = 0;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--lib") == 0 && i + 1 < argc) {
			lib = argv[++i];
		} else if (strcmp(argv[i], "--nthread") == 0 && i + 1 < argc) {
			char *end;
			nthread = (int)strtol(argv[++i], &end, 10);
			if (*end || nthread < 1) usage();
		} else if (strcmp(argv[i], "--pure") == 0) {
			pure = 1;
		} else if (strcmp(argv[i], "--leave-output-tensor") == 0) {
			leaveOutput = 1;
		} else if (strcmp(argv[i], "--allow-requantize") == 0) {
			requant = 1;
		} else {
			usage();
		}
	}
	if (argc - i != 3) usage();
	const char *in = argv[i], *out = argv[i + 1], *type = argv[i + 2];
	int ft = -1;
	for (size_t k = 0; k < sizeof ftypes / sizeof ftypes[0]; k++) {
		if (strcmp(ftypes[k].name, type) == 0) ft = (int)ftypes[k].ftype;
	}
	if (ft < 0) {
		fprintf(stderr, "%s: unknown type %s\n", prog, type);
		usage();
	}
	if (!lib && !(lib = findLib())) {
		fprintf(stderr, "%s: no --lib and no libllama.so or libllama.v*.so in $QUANTKIT_LLAMACPP_LIB_DIR\n", prog);
		return 2;
	}

	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "%s: dlopen %s: %s\n", prog, lib, dlerror());
		return 1;
	}
	void (*backendInit)(void) = (void (*)(void))sym(h, lib, "llama_backend_init");
	const char *(*printInfo)(void) = (const char *(*)(void))sym(h, lib, "llama_print_system_info");
	struct llama_model_quantize_params (*defaults)(void) =
	    (struct llama_model_quantize_params(*)(void))sym(h, lib, "llama_model_quantize_default_params");
	uint32_t (*quantize)(const char *, const char *, const struct llama_model_quantize_params *) =
	    (uint32_t(*)(const char *, const char *, const struct llama_model_quantize_params *))sym(
	        h, lib, "llama_model_quantize");

	backendInit();
	fprintf(stderr, "%s: %s: %s\n", prog, lib, printInfo());
	struct llama_model_quantize_params p = defaults();
	p.nthread = nthread;
	p.ftype = (enum llama_ftype)ft;
	p.pure = pure != 0;
	p.quantize_output_tensor = !leaveOutput;
	p.allow_requantize = requant != 0;
	uint32_t rc = quantize(in, out, &p);
	if (rc != 0) {
		fprintf(stderr, "%s: llama_model_quantize(%s, %s, %s) failed: %u\n", prog, in, out, type, rc);
		return 1;
	}
	return 0;
}
