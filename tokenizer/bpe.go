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
func (m *merger) apply(syms []int32, merges *mergeTable) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	if n == 2 {
		if mg, ok := merges.get(pairKey(syms[0], syms[1])); ok {
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
			if mg, ok := merges.get(pairKey(syms[i], syms[i+1])); ok {
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
		mg, ok := merges.get(pairKey(syms[i], syms[j]))
		if !ok || mg.rank != c.rank {
			continue // stale: the pair at i changed since this was pushed
		}
		syms[i] = mg.id
		k := next[j]
		next[i] = k
		next[j] = dead
		if k >= 0 {
			prev[k] = i
			if mg, ok := merges.get(pairKey(syms[i], syms[k])); ok {
				m.heap.push(candidate{mg.rank, i})
			}
		}
		if p := prev[i]; p >= 0 {
			if mg, ok := merges.get(pairKey(syms[p], syms[i])); ok {
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

// mergeTable maps pairKey(a, b) to the merge of a and b: an open-addressing
// hash table with linear probing, at most half full, each key beside its
// merge so that a probe touches one cache line. BPE spends most of its time
// looking pairs up; this is about twice as fast as a Go map with uint64
// keys. The zero value is an empty table.
type mergeTable struct {
	slots []mergeSlot
	n     int
	shift uint // 64 - log2(len(slots))
}

type mergeSlot struct {
	key uint64 // emptyKey where free
	merge
}

// emptyKey is pairKey(-1, -1), which no pair of ids has.
const emptyKey = ^uint64(0)

func (m *mergeTable) slot(k uint64) int {
	return int((k * 0x9E3779B97F4A7C15) >> m.shift)
}

// get is the merge of the pair k.
func (m *mergeTable) get(k uint64) (merge, bool) {
	if m.n == 0 {
		return merge{}, false
	}
	mask := len(m.slots) - 1
	for i := m.slot(k); ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.key == k {
			return s.merge, true
		}
		if s.key == emptyKey {
			return merge{}, false
		}
	}
}

// set puts the merge of the pair k, replacing one there.
func (m *mergeTable) set(k uint64, v merge) {
	if 2*(m.n+1) > len(m.slots) {
		m.reserve(max(2*m.n, 8))
	}
	mask := len(m.slots) - 1
	for i := m.slot(k); ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.key == k {
			s.merge = v
			return
		}
		if s.key == emptyKey {
			*s = mergeSlot{k, v}
			m.n++
			return
		}
	}
}

// reserve makes room for n pairs without growing.
func (m *mergeTable) reserve(n int) {
	size, shift := 8, uint(61)
	for size < 2*n {
		size, shift = size*2, shift-1
	}
	if size <= len(m.slots) {
		return
	}
	old := m.slots
	m.slots, m.n, m.shift = make([]mergeSlot, size), 0, shift
	for i := range m.slots {
		m.slots[i].key = emptyKey
	}
	for _, s := range old {
		if s.key != emptyKey {
			m.set(s.key, s.merge)
		}
	}
}

// each calls f with every merge.
func (m *mergeTable) each(f func(merge)) {
	for _, s := range m.slots {
		if s.key != emptyKey {
			f(s.merge)
		}
	}
}
