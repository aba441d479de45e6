package ssh

import (
	"bytes"
	"strings"
	"sync"
)

// maxLine bounds a line held back while waiting for its newline.
const maxLine = 64 << 10

// tail keeps the last n output lines of a command (both streams), masked.
type tail struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tail) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

// lineWriter splits one output stream into lines, masks secrets in them,
// keeps them in the tail and streams them (when out is set).
type lineWriter struct {
	node, stream string
	out          func(Line)
	secrets      *Secrets
	tail         *tail
	buf          []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large buffer go
	}
	return len(p), nil
}

// flush emits a last line without a newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

func (w *lineWriter) emit(b []byte) {
	line := w.secrets.Mask(strings.TrimRight(string(b), "\r"))
	w.tail.add(line)
	if w.out != nil {
		w.out(Line{Node: w.node, Stream: w.stream, Text: line})
	}
}
