package labfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// pos is where a value starts in the file.
type pos struct{ line, col int }

// positions maps field paths (nodes[1].addresses.lab) to where their values
// start, so that validation can point at the line of the offending value.
type positions map[string]pos

// lookup returns the position of path, or of its nearest ancestor that is in
// the file (a defaulted field has no line of its own).
func (ps positions) lookup(path string) pos {
	for p := path; ; {
		if at, ok := ps[p]; ok {
			return at
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return ps[""]
		}
		p = p[:i]
	}
}

// Load reads, defaults and validates the lab file at path. It returns the
// warnings on success. On failure the error is a Problems that lists every
// problem found (errors and warnings), each with its line.
func Load(path string) (*Lab, Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read lab file: %w", err)
	}
	lab, warns, err := Parse(path, data)
	if lab != nil {
		lab.Path = path
	}
	return lab, warns, err
}

// Parse is Load for a lab file already in memory; name is used in messages.
func Parse(name string, data []byte) (*Lab, Problems, error) {
	lab, at, probs := decode(name, data)
	return finish(name, lab, at, probs)
}

// finish defaults and validates a decoded lab, placing each problem at
// its line.
func finish(name string, lab *Lab, at positions, probs Problems) (*Lab, Problems, error) {
	if len(probs) > 0 {
		return nil, nil, probs
	}
	Default(lab)
	probs = validate(lab, name)
	for i := range probs {
		p := at.lookup(probs[i].Path)
		probs[i].File, probs[i].Line, probs[i].Column = name, p.line, p.col
	}
	probs.sort()
	if len(probs.Errors()) > 0 {
		return nil, nil, probs
	}
	return lab, probs, nil
}

// yamlLine finds "line N" in yaml.v3's error text; it reports no column.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// decode parses data strictly: YAML syntax errors, unknown fields and wrong
// types are all reported with their line, column and field path.
func decode(name string, data []byte) (*Lab, positions, Problems) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, Problems{{File: name, Message: "the lab file is empty", Hint: "start from one of the files in labs/"}}
		}
		p := Problem{File: name, Message: err.Error()}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = "invalid YAML: " + m[2]
		}
		return nil, nil, Problems{p}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, Problems{{File: name, Line: extra.Line, Column: extra.Column,
			Message: "a second YAML document", Hint: "a lab file holds exactly one Lab; remove the '---' and what follows"}}
	}
	return decodeDoc(name, &doc)
}

// decodeDoc is decode for a parsed document.
func decodeDoc(name string, doc *yaml.Node) (*Lab, positions, Problems) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w := walker{file: name, at: positions{"": {root.Line, root.Column}}}
	w.check(root, reflect.TypeOf(Lab{}), "")
	if len(w.probs) > 0 {
		w.probs.sort()
		return nil, nil, w.probs
	}
	var lab Lab
	if err := root.Decode(&lab); err != nil {
		// check already catches what Decode rejects; keep this safe anyway.
		return nil, nil, Problems{{File: name, Message: err.Error()}}
	}
	return &lab, w.at, nil
}

type walker struct {
	file  string
	at    positions
	probs Problems
}

func (w *walker) fail(n *yaml.Node, path, msg, hint string) {
	w.probs = append(w.probs, Problem{File: w.file, Line: n.Line, Column: n.Column, Path: path, Message: msg, Hint: hint})
}

var anyType = reflect.TypeOf((*any)(nil)).Elem()

// check walks the YAML tree beside the Go type it will be decoded into.
func (w *walker) check(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	w.at[path] = pos{n.Line, n.Column}
	if t == anyType {
		// Free-form values (cni.cilium.values) are not checked, but
		// their positions are kept, so that a warning about one of
		// them points at its line.
		w.mark(n, path)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an explicit null leaves the default in place
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "expected a mapping of fields, got "+describe(n), "")
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			if seen[k.Value] {
				w.fail(k, sub, "field given twice", "keep one of them")
				continue
			}
			seen[k.Value] = true
			f, ok := fields[k.Value]
			if !ok {
				hint := "see docs/labfile.md for the fields of " + orRoot(path)
				if s := closest(k.Value, fields); s != "" {
					hint = fmt.Sprintf("did you mean %q?", s)
				}
				w.fail(k, sub, fmt.Sprintf("unknown field %q", k.Value), hint)
				continue
			}
			w.check(v, f, sub)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "expected a list, got "+describe(n), "")
			return
		}
		for i, e := range n.Content {
			w.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "expected a mapping, got "+describe(n), "")
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			if seen[k.Value] {
				w.fail(k, sub, "key given twice", "keep one of them")
				continue
			}
			seen[k.Value] = true
			w.check(v, t.Elem(), sub)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, fmt.Sprintf("expected %s, got %s", kindName(t), describe(n)), "")
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(n, path, fmt.Sprintf("expected %s, got %q", kindName(t), n.Value), "")
		}
	}
}

// mark records where every value under n starts, for values of no fixed
// type. It does not follow aliases: an alias is located where it is
// written, and one that refers to its own ancestor cannot loop.
func (w *walker) mark(n *yaml.Node, path string) {
	w.at[path] = pos{n.Line, n.Column}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.mark(n.Content[i+1], join(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			w.mark(e, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "a Lab"
	}
	return path
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// yamlFields maps the YAML names of t's exported fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// closest suggests the known field nearest to a misspelt one.
func closest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		d := distance(strings.ToLower(key), strings.ToLower(f))
		if d < bestD || (d == bestD && best != "" && f < best) {
			best, bestD = f, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
