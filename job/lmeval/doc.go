// Package lmeval runs language models for people and scripts: it opens a
// model with its tokenizer whatever the format (Open), generates text from a
// prompt (Generate) and measures a model's perplexity on a text and how far
// its next-token distributions are from a reference model's (Eval), as
// llama.cpp's llama-cli and llama-perplexity do. cmd/quantkit's `lm`
// commands are thin shells around these calls.
package lmeval
