package docscheck

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/labctl/lab/provision/graph"
	"github.com/labctl/lab/provision/labfile"
)

var update = flag.Bool("update", false, "rewrite the generated blocks of docs/topology.md")

const root = "../../"

// generated matches a block of docs/topology.md made by lab graph: a
// comment naming the command, then a fenced block with its output.
var generated = regexp.MustCompile("(?s)<!-- lab graph (--format dot )?(\\S+) -->\n```(\\w+)\n(.*?)```\n")

// TestTopologyIsLabGraphOutput keeps the pictures in docs/topology.md equal
// to what `lab graph` prints for the same lab files.
func TestTopologyIsLabGraphOutput(t *testing.T) {
	path := root + "docs/topology.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	var problems []string
	out := generated.ReplaceAllStringFunc(string(doc), func(block string) string {
		m := generated.FindStringSubmatch(block)
		dot, file, lang, got := m[1] != "", m[2], m[3], m[4]
		blocks++
		lab, _, err := labfile.Load(root + file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", file, err))
			return block
		}
		want, wantLang := graph.Mermaid(lab), "mermaid"
		if dot {
			want, wantLang = graph.DOT(lab), "dot"
		}
		if got != want || lang != wantLang {
			problems = append(problems, fmt.Sprintf("the %s block for %s is not what lab graph prints:\n%s", lang, file, want))
		}
		return strings.Replace(block, "```"+lang+"\n"+got, "```"+wantLang+"\n"+want, 1)
	})
	if blocks < 3 {
		t.Fatalf("%s: found %d generated blocks, want at least 3", path, blocks)
	}
	if len(problems) == 0 {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is stale (go test ./internal/docscheck -update rewrites it):\n%s", path, strings.Join(problems, "\n"))
}

// yamlFields lists the YAML key of every field reachable from t, with the
// Go path it belongs to.
func yamlFields(t reflect.Type, path string, seen map[reflect.Type]bool, out map[string]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[path+"."+name] = name
		yamlFields(f.Type, path+"."+name, seen, out)
	}
}

// TestLabfileReferenceIsComplete fails when a lab file field or a default
// of provision/labfile is missing from docs/labfile.md.
func TestLabfileReferenceIsComplete(t *testing.T) {
	doc, err := os.ReadFile(root + "docs/labfile.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	fields := map[string]string{}
	yamlFields(reflect.TypeOf(labfile.Lab{}), "", map[reflect.Type]bool{}, fields)
	if len(fields) < 50 {
		t.Fatalf("found only %d lab file fields; the walk is broken", len(fields))
	}
	for path, name := range fields {
		if !strings.Contains(text, "| `"+name+"` |") {
			t.Errorf("docs/labfile.md has no table row for %s (`%s`)", path, name)
		}
	}
	for name, v := range map[string]string{
		"DefaultKubernetesVersion": labfile.DefaultKubernetesVersion,
		"DefaultPodSubnet":         labfile.DefaultPodSubnet,
		"DefaultServiceSubnet":     labfile.DefaultServiceSubnet,
		"DefaultDNSDomain":         labfile.DefaultDNSDomain,
		"DefaultCRISocket":         labfile.DefaultCRISocket,
		"DefaultAPIPort":           strconv.Itoa(labfile.DefaultAPIPort),
		"DefaultSharedLBPort":      strconv.Itoa(labfile.DefaultSharedLBPort),
		"DefaultVRRPRouterID":      strconv.Itoa(labfile.DefaultVRRPRouterID),
		"DefaultAdvertInterval":    strconv.FormatFloat(labfile.DefaultAdvertInterval, 'f', -1, 64),
		"DefaultVagrantBox":        labfile.DefaultVagrantBox,
		"DefaultVagrantCPUs":       strconv.Itoa(labfile.DefaultVagrantCPUs),
		"DefaultVagrantMemory":     strconv.Itoa(labfile.DefaultVagrantMemory),
		"DefaultDockerImage":       labfile.DefaultDockerImage,
		"DefaultCiliumVersion":     labfile.DefaultCiliumVersion,
	} {
		if !strings.Contains(text, "`"+v+"`") {
			t.Errorf("docs/labfile.md does not give labfile.%s (`%s`)", name, v)
		}
	}
}
