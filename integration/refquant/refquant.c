// refquant quantizes float32 rows with llama.cpp's own ggml_quantize_chunk,
// for the byte-for-byte comparisons of model/gguf's integration tests.
//
//	refquant [-w IMATRIX.f32] LIBGGMLBASE TYPE N_PER_ROW < rows.f32 > rows.q
//	refquant -d LIBGGMLBASE TYPE N_PER_ROW < rows.q > rows.f32
//
// LIBGGMLBASE is the path of libggml-base.so (node-llama-cpp ships one),
// TYPE the ggml_type id, N_PER_ROW the row length; stdin holds whole rows
// of little-endian float32, and stdout gets ggml_quantize_chunk(TYPE, src,
// dst, 0, nrows, N_PER_ROW, NULL): the reference quantizers
// (quantize_row_*_ref) for every type this project writes. With -w, the
// file IMATRIX.f32 holds N_PER_ROW little-endian float32 importance values
// passed as ggml_quantize_chunk's imatrix (the quantize_row_*_impl paths
// llama-quantize takes with an importance matrix). With -d it
// converts whole rows of TYPE back to float32 with the type's to_float
// (dequantize_row_*), from ggml_get_type_traits. The library is opened
// with dlopen so that building the harness needs no ggml headers.
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start,
                                    int64_t nrows, int64_t n_per_row, const float *imatrix);
typedef size_t (*row_size_fn)(int type, int64_t ne);
typedef void (*to_float_fn)(const void *x, float *y, int64_t k);

// The start of ggml.h's struct ggml_type_traits.
struct type_traits {
	const char *type_name;
	int64_t blck_size;
	int64_t blck_size_interleave;
	size_t type_size;
	bool is_quantized;
	to_float_fn to_float;
};
typedef const struct type_traits *(*get_type_traits_fn)(int type);

static void *read_all(FILE *f, size_t *n) {
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (!buf) return NULL;
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) break;
		if (len == cap) buf = realloc(buf, cap *= 2);
	}
	*n = len;
	return buf;
}

int main(int argc, char **argv) {
	bool dequantize = argc == 5 && strcmp(argv[1], "-d") == 0;
	if (dequantize) {
		argv++;
		argc--;
	}
	const char *imatrix_file = NULL;
	if (!dequantize && argc == 6 && strcmp(argv[1], "-w") == 0) {
		imatrix_file = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: refquant [-d | -w IMATRIX.f32] LIBGGMLBASE TYPE N_PER_ROW < input > output\n");
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "refquant: %s\n", dlerror());
		return 1;
	}
	quantize_chunk_fn quantize_chunk = (quantize_chunk_fn)dlsym(lib, "ggml_quantize_chunk");
	row_size_fn row_size = (row_size_fn)dlsym(lib, "ggml_row_size");
	if (!quantize_chunk || !row_size) {
		fprintf(stderr, "refquant: %s: no ggml_quantize_chunk or ggml_row_size\n", argv[1]);
		return 1;
	}
	int type = atoi(argv[2]);
	int64_t n_per_row = atoll(argv[3]);
	size_t n;
	float *src = read_all(stdin, &n);
	if (!src) {
		fprintf(stderr, "refquant: out of memory\n");
		return 1;
	}
	if (dequantize) {
		get_type_traits_fn get_type_traits = (get_type_traits_fn)dlsym(lib, "ggml_get_type_traits");
		const struct type_traits *tt = get_type_traits ? get_type_traits(type) : NULL;
		if (!tt || !tt->to_float) {
			fprintf(stderr, "refquant: %s: no to_float for type %d\n", argv[1], type);
			return 1;
		}
		size_t rs = row_size(type, n_per_row);
		if (n_per_row <= 0 || n % rs != 0) {
			fprintf(stderr, "refquant: %zu bytes of input are not whole rows of %zu bytes\n", n, rs);
			return 1;
		}
		int64_t k = (int64_t)(n / rs) * n_per_row;
		float *y = malloc(k ? (size_t)k * sizeof(float) : 1);
		if (!y) {
			fprintf(stderr, "refquant: out of memory\n");
			return 1;
		}
		tt->to_float(src, y, k);
		if (fwrite(y, sizeof(float), (size_t)k, stdout) != (size_t)k || fflush(stdout) != 0) {
			perror("refquant: stdout");
			return 1;
		}
		return 0;
	}
	if (n_per_row <= 0 || n % (sizeof(float) * (size_t)n_per_row) != 0) {
		fprintf(stderr, "refquant: %zu bytes of input are not whole rows of %lld floats\n", n, (long long)n_per_row);
		return 1;
	}
	int64_t nrows = (int64_t)(n / sizeof(float) / (size_t)n_per_row);
	size_t out_size = (size_t)nrows * row_size(type, n_per_row);
	void *dst = malloc(out_size ? out_size : 1);
	if (!dst) {
		fprintf(stderr, "refquant: out of memory\n");
		return 1;
	}
	float *imatrix = NULL;
	if (imatrix_file) {
		FILE *f = fopen(imatrix_file, "rb");
		size_t m = 0;
		imatrix = f ? read_all(f, &m) : NULL;
		if (!imatrix || m != sizeof(float) * (size_t)n_per_row) {
			fprintf(stderr, "refquant: %s: want %lld float32 importance values, have %zu bytes\n", imatrix_file,
			        (long long)n_per_row, m);
			return 1;
		}
		fclose(f);
	}
	size_t got = quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix);
	if (got != out_size) {
		fprintf(stderr, "refquant: ggml_quantize_chunk wrote %zu bytes, want %zu\n", got, out_size);
		return 1;
	}
	if (fwrite(dst, 1, out_size, stdout) != out_size || fflush(stdout) != 0) {
		perror("refquant: stdout");
		return 1;
	}
	return 0;
}
