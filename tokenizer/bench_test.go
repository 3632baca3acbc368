package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// benchText is about 4 MB of English-like text: words drawn from the
// stories260K vocabulary's whole-word pieces and some common words, with
// punctuation, digits and newlines, from a fixed seed.
func benchText(b *testing.B) string {
	words := strings.Fields("the a little girl named Lily was happy and she saw big dog in park one day they played with ball sun shone bright her mom said time to go home it is very important that we learn about things because world full of wonder")
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for sb.Len() < 4<<20 {
		sb.WriteString(words[rng.IntN(len(words))])
		switch rng.IntN(20) {
		case 0:
			sb.WriteString(". ")
		case 1:
			sb.WriteString(", ")
		case 2:
			sb.WriteString(".\n\n")
		case 3:
			sb.WriteString(" 1987 ")
		default:
			sb.WriteByte(' ')
		}
	}
	return sb.String()
}

func benchEncode(b *testing.B, tk *Tokenizer) {
	text := benchText(b)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tk.Encode(text)
	}
}

func BenchmarkEncode4MB(b *testing.B) {
	b.Run("stories260K", func(b *testing.B) {
		tk, err := LoadFile(storiesJSON)
		if err != nil {
			b.Fatal(err)
		}
		benchEncode(b, tk)
	})
	b.Run("gpt2", func(b *testing.B) {
		tk, err := LoadFile(gpt2Path(b))
		if err != nil {
			b.Fatal(err)
		}
		benchEncode(b, tk)
	})
	b.Run("llama2c", func(b *testing.B) {
		tk, err := LoadLlama2C("../testdata/llm/stories260K/tok512.bin")
		if err != nil {
			b.Fatal(err)
		}
		benchEncode(b, tk)
	})
}
