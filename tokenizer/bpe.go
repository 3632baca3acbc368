package tokenizer

// merge is the result of joining two adjacent symbols: its priority (lower
// merges first) and the id it becomes.
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// candidate is a possible merge of the symbol at pos with the next one.
type candidate struct {
	rank int32
	pos  int32
}

func (c candidate) less(d candidate) bool {
	return c.rank < d.rank || (c.rank == d.rank && c.pos < d.pos)
}

// mergeHeap is a binary min-heap of candidates, typed to avoid
// container/heap's interface calls.
type mergeHeap []candidate

func (h *mergeHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() candidate {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].less(s[l]) {
			m = r
		}
		if !s[m].less(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// merger holds the scratch space of one BPE word merge.
type merger struct {
	prev, next []int32
	heap       mergeHeap
}

// apply merges syms in place by rank, lowest rank first and leftmost among
// equal ranks (as the Hugging Face BPE model and llama2.c's encode do), and
// returns the merged symbols. It is O(n log n) in the number of symbols, so
// a long SentencePiece text (which has no pre-tokenizer to split it) costs
// no more per byte than a short word.
func (m *merger) apply(syms []int32, merges map[uint64]merge) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	if n == 2 {
		if mg, ok := merges[pairKey(syms[0], syms[1])]; ok {
			syms[0] = mg.id
			return syms[:1]
		}
		return syms
	}
	if cap(m.prev) < n {
		m.prev = make([]int32, n)
		m.next = make([]int32, n)
	}
	prev, next := m.prev[:n], m.next[:n]
	m.heap = m.heap[:0]
	for i := range n {
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
		if i+1 < n {
			if mg, ok := merges[pairKey(syms[i], syms[i+1])]; ok {
				m.heap.push(candidate{mg.rank, int32(i)})
			}
		}
	}
	next[n-1] = -1
	const dead = -2
	for len(m.heap) > 0 {
		c := m.heap.pop()
		i := c.pos
		if next[i] == dead {
			continue // merged into its left neighbour
		}
		j := next[i]
		if j < 0 {
			continue
		}
		mg, ok := merges[pairKey(syms[i], syms[j])]
		if !ok || mg.rank != c.rank {
			continue // stale: the pair at i changed since this was pushed
		}
		syms[i] = mg.id
		k := next[j]
		next[i] = k
		next[j] = dead
		if k >= 0 {
			prev[k] = i
			if mg, ok := merges[pairKey(syms[i], syms[k])]; ok {
				m.heap.push(candidate{mg.rank, i})
			}
		}
		if p := prev[i]; p >= 0 {
			if mg, ok := merges[pairKey(syms[p], syms[i])]; ok {
				m.heap.push(candidate{mg.rank, p})
			}
		}
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}
