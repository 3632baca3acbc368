// llamabench: llama.cpp's prefill and decode speed on a GGUF model, timed
// as llama-bench times them, and its greedy tokens, as one JSON line on
// stdout. bench/llamacpp runs it beside quantkit; build-llamacpp-bench.sh
// builds it against a native CPU build of libllama.
//
// usage: llamabench -m MODEL.gguf -t THREADS -p N_PROMPT -n N_GEN
//                   [-r REPS] [-g AGREE] [-kv f16|f32] [-f PROMPT_FILE]
//                   [-poll 0..100] [-backends DIR]
//
// The context is llama-bench's: n_ctx = n_prompt + max(n_gen, agree), n_batch
// 2048, n_ubatch 512, flash attention off, the KV cache in -kv (llama-bench's
// default F16), load_mode auto (llama-bench's default: memory-mapped), a
// ggml threadpool of THREADS threads attached (llama-bench's default parameters). -backends DIR loads
// the ggml backends built as shared objects (GGML_BACKEND_DL, as the
// prebuilt libraries of node-llama-cpp are) from DIR. Each rep, after one
// warm-up of each, as in llama-bench:
//
//   prefill: the cache cleared, the N_PROMPT tokens of PROMPT_FILE (ids,
//            apart by white space; without it BOS then ids from rand() as
//            llama-bench draws them) decoded in batches of n_batch, timed to
//            llama_synchronize;
//   decode:  the cache cleared, BOS then N_GEN single-token decodes, each
//            token the greedy pick (argmax) of the logits before it; the
//            time of all N_GEN decodes (llama-bench feeds random tokens; the
//            argmax over the vocabulary costs microseconds).
//
// After the first prefill, AGREE (default 16) tokens are generated greedily
// from the prompt, untimed: "tokens" in the output, for comparing with
// another engine's greedy output on the same weights.
//
// Output: {"model_desc", "model_size", "n_params", "n_vocab", "bos",
// "threads", "n_prompt", "n_gen", "kv", "prefill_ns": [...], "decode_ns":
// [...], "tokens": [...], "system_info"}. llama.cpp's log goes to stderr
// (warnings and errors only).
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

typedef struct ggml_threadpool *(*threadpool_new_fn)(struct ggml_threadpool_params *);
typedef void (*threadpool_free_fn)(struct ggml_threadpool *);

static void die(const char *msg) {
	fprintf(stderr, "llamabench: %s\n", msg);
	exit(1);
}

static unsigned long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
	(void)user;
	if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) {
		fputs(text, stderr);
	}
}

static int parse_int(const char *flag, const char *s, int min) {
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > 1 << 24) {
		fprintf(stderr, "llamabench: %s %s: want an integer >= %d\n", flag, s, min);
		exit(2);
	}
	return (int)v;
}

static int argmax(const float *x, int n) {
	int best = 0;
	for (int i = 1; i < n; i++) {
		if (x[i] > x[best]) {
			best = i;
		}
	}
	return best;
}

static void decode_or_die(struct llama_context *ctx, llama_token *tokens, int n, const char *what) {
	int res = llama_decode(ctx, llama_batch_get_one(tokens, n));
	if (res != 0) {
		fprintf(stderr, "llamabench: llama_decode of the %s failed (%d)\n", what, res);
		exit(1);
	}
}

// prefill decodes the prompt in batches of n_batch and returns its time.
static unsigned long long prefill(struct llama_context *ctx, llama_token *prompt, int n_prompt, int n_batch) {
	llama_memory_clear(llama_get_memory(ctx), false);
	unsigned long long t = now_ns();
	for (int i = 0; i < n_prompt; i += n_batch) {
		int n = n_prompt - i < n_batch ? n_prompt - i : n_batch;
		decode_or_die(ctx, prompt + i, n, "prompt");
	}
	llama_synchronize(ctx);
	return now_ns() - t;
}

// decode runs n_gen single-token decodes from BOS, greedily, and returns
// their time.
static unsigned long long decode(struct llama_context *ctx, llama_token bos, int n_gen, int n_vocab) {
	llama_memory_clear(llama_get_memory(ctx), false);
	llama_token tok = bos;
	unsigned long long t = now_ns();
	for (int i = 0; i < n_gen; i++) {
		decode_or_die(ctx, &tok, 1, "generation");
		llama_synchronize(ctx);
		tok = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
	}
	return now_ns() - t;
}

static void print_ns(const char *name, unsigned long long *v, int n) {
	printf("\"%s\":[", name);
	for (int i = 0; i < n; i++) {
		printf("%s%llu", i ? "," : "", v[i]);
	}
	printf("],");
}

static void print_string(const char *name, const char *s) {
	printf("\"%s\":\"", name);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			printf("\\%c", c);
		} else if (c < 0x20) {
			printf("\\u%04x", c);
		} else {
			putchar(c);
		}
	}
	printf("\",");
}

int main(int argc, char **argv) {
	const char *model_path = NULL, *prompt_path = NULL, *kv = "f16", *backends = NULL;
	int threads = 1, n_prompt = 512, n_gen = 128, reps = 1, agree = 16, poll = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc) {
			fprintf(stderr, "llamabench: %s needs a value\n", a);
			return 2;
		}
		const char *v = argv[++i];
		if (!strcmp(a, "-m")) {
			model_path = v;
		} else if (!strcmp(a, "-t")) {
			threads = parse_int(a, v, 1);
		} else if (!strcmp(a, "-p")) {
			n_prompt = parse_int(a, v, 1);
		} else if (!strcmp(a, "-n")) {
			n_gen = parse_int(a, v, 1);
		} else if (!strcmp(a, "-r")) {
			reps = parse_int(a, v, 1);
		} else if (!strcmp(a, "-g")) {
			agree = parse_int(a, v, 0);
		} else if (!strcmp(a, "-kv")) {
			kv = v;
		} else if (!strcmp(a, "-f")) {
			prompt_path = v;
		} else if (!strcmp(a, "-poll")) {
			poll = parse_int(a, v, 0);
			if (poll > 100) {
				die("-poll: want 0 to 100");
			}
		} else if (!strcmp(a, "-backends")) {
			backends = v;
		} else {
			fprintf(stderr, "llamabench: unknown flag %s\n", a);
			return 2;
		}
	}
	if (!model_path) {
		die("usage: llamabench -m MODEL.gguf -t THREADS -p N_PROMPT -n N_GEN [-r REPS] [-g AGREE] [-kv f16|f32] [-f PROMPT_FILE] [-poll 0..100] [-backends DIR]");
	}
	enum ggml_type kv_type;
	if (!strcmp(kv, "f16")) {
		kv_type = GGML_TYPE_F16;
	} else if (!strcmp(kv, "f32")) {
		kv_type = GGML_TYPE_F32;
	} else {
		die("-kv: want f16 or f32");
	}

	llama_log_set(quiet_log, NULL);
	// A build with the CPU backend linked in has it registered already; a
	// build with backends as shared objects (GGML_BACKEND_DL, the prebuilt
	// libraries) loads the best CPU variant for this processor from DIR.
	if (backends) {
		ggml_backend_load_all_from_path(backends);
	} else {
		ggml_backend_load_all();
	}
	llama_backend_init();
	// The threadpool functions, from the CPU backend wherever it lives (as
	// llama-bench finds them).
	ggml_backend_dev_t cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
	if (!cpu_dev) {
		die("no CPU backend (with shared-object backends, pass -backends DIR)");
	}
	ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev);
	threadpool_new_fn tp_new = (threadpool_new_fn)ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new");
	threadpool_free_fn tp_free = (threadpool_free_fn)ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free");
	if (!tp_new || !tp_free) {
		die("the CPU backend exports no ggml_threadpool_new/ggml_threadpool_free");
	}

	struct llama_model_params mp = llama_model_default_params();
	mp.n_gpu_layers = 0;
	mp.load_mode = LLAMA_LOAD_MODE_AUTO;
	struct llama_model *model = llama_model_load_from_file(model_path, mp);
	if (!model) {
		fprintf(stderr, "llamabench: %s: llama.cpp cannot load it\n", model_path);
		return 1;
	}
	const struct llama_vocab *vocab = llama_model_get_vocab(model);
	int n_vocab = llama_vocab_n_tokens(vocab);
	llama_token bos = llama_vocab_bos(vocab);
	if (bos < 0) {
		bos = 0;
	}

	llama_token *prompt = malloc(sizeof(llama_token) * (size_t)n_prompt);
	if (!prompt) {
		die("out of memory");
	}
	if (prompt_path) {
		FILE *f = fopen(prompt_path, "r");
		if (!f) {
			fprintf(stderr, "llamabench: %s: %s\n", prompt_path, strerror(errno));
			return 1;
		}
		for (int i = 0; i < n_prompt; i++) {
			if (fscanf(f, "%d", &prompt[i]) != 1 || prompt[i] < 0 || prompt[i] >= n_vocab) {
				fprintf(stderr, "llamabench: %s: token %d missing or outside [0, %d)\n", prompt_path, i, n_vocab);
				return 1;
			}
		}
		fclose(f);
	} else {
		prompt[0] = bos;
		for (int i = 1; i < n_prompt; i++) {
			prompt[i] = rand() % n_vocab;
		}
	}

	struct llama_context_params cp = llama_context_default_params();
	cp.n_ctx = (uint32_t)(n_prompt + (n_gen > agree ? n_gen : agree));
	cp.n_batch = 2048;
	cp.n_ubatch = 512;
	cp.n_threads = threads;
	cp.n_threads_batch = threads;
	cp.type_k = kv_type;
	cp.type_v = kv_type;
	cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
	struct llama_context *ctx = llama_init_from_model(model, cp);
	if (!ctx) {
		die("llama_init_from_model failed");
	}
	struct ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
	if (poll >= 0) {
		tpp.poll = (uint32_t)poll;
	}
	struct ggml_threadpool *pool = tp_new(&tpp);
	if (!pool) {
		die("ggml_threadpool_new failed");
	}
	llama_attach_threadpool(ctx, pool, NULL);
	llama_set_n_threads(ctx, threads, threads);

	// Warm-up, as llama-bench: one prefill, one decode step.
	prefill(ctx, prompt, n_prompt, (int)cp.n_batch);
	decode(ctx, bos, 1, n_vocab);

	unsigned long long *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
	llama_token *toks = calloc((size_t)agree + 1, sizeof *toks);
	if (!pp || !tg || !toks) {
		die("out of memory");
	}
	for (int r = 0; r < reps; r++) {
		pp[r] = prefill(ctx, prompt, n_prompt, (int)cp.n_batch);
		if (r == 0) {
			for (int i = 0; i < agree; i++) {
				toks[i] = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
				if (i + 1 < agree) {
					decode_or_die(ctx, &toks[i], 1, "greedy continuation");
				}
			}
		}
		tg[r] = decode(ctx, bos, n_gen, n_vocab);
	}

	char desc[256];
	llama_model_desc(model, desc, sizeof desc);
	printf("{");
	print_string("model_desc", desc);
	printf("\"model_size\":%llu,\"n_params\":%llu,\"n_vocab\":%d,\"bos\":%d,\"threads\":%d,\"n_prompt\":%d,\"n_gen\":%d,",
	       (unsigned long long)llama_model_size(model), (unsigned long long)llama_model_n_params(model), n_vocab, bos,
	       threads, n_prompt, n_gen);
	print_string("kv", kv);
	print_ns("prefill_ns", pp, reps);
	print_ns("decode_ns", tg, reps);
	printf("\"tokens\":[");
	for (int i = 0; i < agree; i++) {
		printf("%s%d", i ? "," : "", toks[i]);
	}
	printf("],");
	const char *sys = llama_print_system_info();
	printf("\"system_info\":\"");
	for (; *sys; sys++) {
		if (*sys == '"' || *sys == '\\') {
			putchar('\\');
		}
		if ((unsigned char)*sys >= 0x20) {
			putchar(*sys);
		}
	}
	printf("\"}\n");

	llama_free(ctx);
	tp_free(pool);
	llama_model_free(model);
	llama_backend_free();
	free(pp);
	free(tg);
	free(toks);
	free(prompt);
	return 0;
}
