// llama-quantize-harness: llama.cpp's own GGUF → GGUF quantization, for the
// integration tests to compare quantkit's output against. It is the core of
// llama.cpp's tools/quantize without its extras: it dlopens libllama (the
// prebuilt one that node-llama-cpp ships), takes
// llama_model_quantize_default_params(), sets the file type by
// llama-quantize's name, the thread count and the flags below, and makes
// the one library call, llama_model_quantize(in, out, &params).
//
// usage: llama-quantize-harness [--lib LIBLLAMA] [--nthread N] [--pure]
//            [--leave-output-tensor] [--allow-requantize] [--imatrix FILE.dat]
//            IN.gguf OUT.gguf TYPE
//
// --imatrix reads an importance matrix in llama-imatrix's legacy .dat
// format and passes it as tools/quantize does: each entry's values divided
// by its ncall (kept where ncall <= 0), and the kv overrides
// quantize.imatrix.file, .dataset (if any), .entries_count and
// .chunks_count (if > 0).
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

// loadImatrix reads a legacy .dat importance matrix into *data (entries,
// then a NULL-named terminator), its chunk count and first dataset, as
// common_imatrix_load_legacy and tools/quantize's load_imatrix do.
static int loadImatrix(const char *path, struct llama_model_imatrix_data **data, int *nentries, int32_t *chunks,
                       char *dataset, size_t dslen) {
	FILE *f = fopen(path, "rb");
	int32_t n = 0;
	if (!f || fread(&n, 4, 1, f) != 1 || n < 1) return -1;
	*data = calloc((size_t)n + 1, sizeof **data);
	for (int32_t i = 0; i < n; i++) {
		int32_t len = 0, ncall = 0, nval = 0;
		if (fread(&len, 4, 1, f) != 1 || len < 0) return -1;
		char *name = calloc((size_t)len + 1, 1);
		if (fread(name, 1, (size_t)len, f) != (size_t)len) return -1;
		if (fread(&ncall, 4, 1, f) != 1 || fread(&nval, 4, 1, f) != 1 || nval < 1) return -1;
		float *v = malloc((size_t)nval * sizeof(float));
		if (fread(v, sizeof(float), (size_t)nval, f) != (size_t)nval) return -1;
		if (ncall > 0)
			for (int32_t k = 0; k < nval; k++) v[k] = v[k] / (int64_t)ncall;
		(*data)[i].name = name;
		(*data)[i].data = v;
		(*data)[i].size = (size_t)nval;
	}
	*nentries = n;
	*chunks = 0;
	dataset[0] = 0;
	int32_t c = 0, len = 0;
	if (fread(&c, 4, 1, f) == 1) {
		*chunks = c;
		if (fread(&len, 4, 1, f) == 1 && len > 0) {
			char *ds = calloc((size_t)len + 1, 1);
			if (fread(ds, 1, (size_t)len, f) == (size_t)len) snprintf(dataset, dslen, "%s", ds);
			free(ds);
		}
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv) {
	const char *lib = NULL, *imatrixFile = NULL;
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
		} else if (strcmp(argv[i], "--imatrix") == 0 && i + 1 < argc) {
			imatrixFile = argv[++i];
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
	struct llama_model_kv_override kvo[5];
	memset(kvo, 0, sizeof kvo);
	if (imatrixFile) {
		struct llama_model_imatrix_data *data = NULL;
		int n = 0;
		int32_t chunks = 0;
		char dataset[128];
		if (loadImatrix(imatrixFile, &data, &n, &chunks, dataset, sizeof dataset) != 0) {
			fprintf(stderr, "%s: cannot read %s as a legacy .dat imatrix\n", prog, imatrixFile);
			return 1;
		}
		p.imatrix = data;
		int k = 0;
		kvo[k].tag = LLAMA_KV_OVERRIDE_TYPE_STR;
		strcpy(kvo[k].key, "quantize.imatrix.file");
		snprintf(kvo[k++].val_str, 128, "%s", imatrixFile);
		if (dataset[0]) {
			kvo[k].tag = LLAMA_KV_OVERRIDE_TYPE_STR;
			strcpy(kvo[k].key, "quantize.imatrix.dataset");
			snprintf(kvo[k++].val_str, 128, "%s", dataset);
		}
		kvo[k].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
		strcpy(kvo[k].key, "quantize.imatrix.entries_count");
		kvo[k++].val_i64 = n;
		if (chunks > 0) {
			kvo[k].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
			strcpy(kvo[k].key, "quantize.imatrix.chunks_count");
			kvo[k++].val_i64 = chunks;
		}
		p.kv_overrides = kvo;
	}
	uint32_t rc = quantize(in, out, &p);
	if (rc != 0) {
		fprintf(stderr, "%s: llama_model_quantize(%s, %s, %s) failed: %u\n", prog, in, out, type, rc);
		return 1;
	}
	return 0;
}
