// refbench times llama.cpp's own ggml_quantize_chunk on one thread, for
// model/gguf's TestQuantizeSpeedVsGGML, which times quantkit's quantizers
// on the same input in the same run.
//
//	refbench LIBGGMLBASE TYPE N_PER_ROW ROUNDS < rows.f32
//
// stdin holds whole rows of little-endian float32. refbench quantizes all
// of them ROUNDS times (after one warm-up pass), timing each pass, and
// prints the fastest pass's nanoseconds on stdout: the best of several
// passes is the one least disturbed by other work on a shared machine.
// The library is opened with dlopen, as refquant does.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start,
                                    int64_t nrows, int64_t n_per_row, const float *imatrix);
typedef size_t (*row_size_fn)(int type, int64_t ne);

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: refbench LIBGGMLBASE TYPE N_PER_ROW ROUNDS < rows.f32\n");
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "refbench: %s\n", dlerror());
		return 1;
	}
	quantize_chunk_fn quantize_chunk = (quantize_chunk_fn)dlsym(lib, "ggml_quantize_chunk");
	row_size_fn row_size = (row_size_fn)dlsym(lib, "ggml_row_size");
	if (!quantize_chunk || !row_size) {
		fprintf(stderr, "refbench: %s: no ggml_quantize_chunk or ggml_row_size\n", argv[1]);
		return 1;
	}
	int type = atoi(argv[2]);
	int64_t n_per_row = atoll(argv[3]);
	int rounds = atoi(argv[4]);
	size_t cap = 1 << 22, n = 0;
	char *src = malloc(cap);
	for (;;) {
		if (!src) {
			fprintf(stderr, "refbench: out of memory\n");
			return 1;
		}
		size_t got = fread(src + n, 1, cap - n, stdin);
		n += got;
		if (got == 0) break;
		if (n == cap) src = realloc(src, cap *= 2);
	}
	if (n_per_row <= 0 || rounds <= 0 || n == 0 || n % (sizeof(float) * (size_t)n_per_row) != 0) {
		fprintf(stderr, "refbench: %zu bytes of input are not whole rows of %lld floats\n", n, (long long)n_per_row);
		return 1;
	}
	int64_t nrows = (int64_t)(n / sizeof(float) / (size_t)n_per_row);
	size_t out_size = (size_t)nrows * row_size(type, n_per_row);
	void *dst = malloc(out_size);
	if (!dst) {
		fprintf(stderr, "refbench: out of memory\n");
		return 1;
	}
	int64_t best = INT64_MAX;
	for (int r = -1; r < rounds; r++) {
		int64_t t0 = now_ns();
		size_t got = quantize_chunk(type, (const float *)src, dst, 0, nrows, n_per_row, NULL);
		int64_t dt = now_ns() - t0;
		if (got != out_size) {
			fprintf(stderr, "refbench: ggml_quantize_chunk wrote %zu bytes, want %zu\n", got, out_size);
			return 1;
		}
		if (r >= 0 && dt < best) best = dt;
	}
	printf("%lld\n", (long long)best);
	return 0;
}
