package phases

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/addons"
	"github.com/labctl/lab/templates/nodefiles"
)

// AddonImagesPhase puts the images lab built for the builtin add-ons of an
// offline lab into containerd on every node, before the addons phase
// installs their charts.
const AddonImagesPhase = "addon-images"

const (
	// addonImagesStamp lists the add-on images the addon-images phase
	// imported on a node, in the format of ciliumImagesStamp.
	addonImagesStamp = addons.Dir + "/images"
	// addonTimeout bounds helm's wait for one add-on's release.
	addonTimeout = 5 * time.Minute
)

// addonsGathered is the lab's builtin add-on sets for one command,
// gathered once, whichever phase asks first. Done checks never ask.
type addonsGathered struct {
	mu   sync.Mutex
	done bool
	sets map[string]*artifacts.AddonSet
	err  error
}

// builtinAddons are the builtin add-ons the lab installs.
func (r *Run) builtinAddons() []*labfile.Addon {
	var out []*labfile.Addon
	for _, a := range r.Lab.InstalledAddons() {
		if a.IsBuiltin() {
			out = append(out, a)
		}
	}
	return out
}

// addonSets returns the sets of the lab's builtin add-ons by name, from
// the artifact cache, made there when missing; phase is the asking phase,
// which reports the progress.
func (r *Run) addonSets(ctx context.Context, phase string) (map[string]*artifacts.AddonSet, error) {
	g := &r.addons
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		g.done = true
		g.sets, g.err = r.gatherAddons(ctx, phase)
	}
	return g.sets, g.err
}

func (r *Run) gatherAddons(ctx context.Context, phase string) (map[string]*artifacts.AddonSet, error) {
	sets := map[string]*artifacts.AddonSet{}
	list := r.builtinAddons()
	if len(list) == 0 {
		return sets, nil
	}
	arch, err := r.artifactArch()
	if err != nil {
		return nil, err
	}
	lay, err := artifacts.NewLayout(r.Sources.CacheDir)
	if err != nil {
		return nil, err
	}
	source := artifacts.SourceRelease
	if r.Lab.Kubernetes.Artifacts == labfile.ArtifactsBuild {
		source = artifacts.SourceBuild
	}
	for _, a := range list {
		b, _ := labfile.Builtin(a.Name)
		log := &lineWriter{emit: func(line string) { r.info(phase, "", "%s", line) }}
		o := artifacts.AddonOptions{Name: a.Name, Module: b.Module, Version: a.Version, Arch: arch, Source: source, Log: log}
		if u := r.Sources.Userland; u != nil {
			o.Userland = func() (string, error) { return u(lay.NodeImageDir()) }
		}
		s, found, err := lay.Cache().GatherAddon(ctx, o)
		log.Flush()
		if err != nil {
			return nil, fmt.Errorf("add-on %s %s for %s: %w", a.Name, a.Version, arch, err)
		}
		if found {
			r.info(phase, "", "artifacts: add-on %s %s found in the cache (set %s)", a.Name, a.Version, s.Key)
		}
		sets[a.Name] = s
	}
	return sets, nil
}

// addonImages are the images of sets, sorted by reference, and the local
// file of each by digest.
func addonImages(sets map[string]*artifacts.AddonSet) ([]artifacts.Image, map[string]string) {
	var images []artifacts.Image
	paths := map[string]string{}
	for _, s := range sets {
		for _, im := range s.Images {
			images = append(images, im)
			paths[im.Digest] = s.Path(im.Digest)
		}
	}
	sort.Slice(images, func(i, j int) bool { return images[i].Ref < images[j].Ref })
	return images, paths
}

// addonStamp is the content of addonImagesStamp for images.
func addonStamp(sets map[string]*artifacts.AddonSet, images []artifacts.Image) []byte {
	keys := make([]string, 0, len(sets))
	for _, s := range sets {
		keys = append(keys, s.Key)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "# set %s\n", strings.Join(keys, " "))
	for _, im := range images {
		b.WriteString(im.Ref + " " + im.ID + "\n")
	}
	return []byte(b.String())
}

// addonImagesInPlace reports whether node was given an image for every
// builtin add-on of the lab, at its version, and containerd still holds
// each with the ID it had then. It only reads.
func (r *Run) addonImagesInPlace(ctx context.Context, node string) (bool, error) {
	var want []string
	for _, a := range r.builtinAddons() {
		want = append(want, artifacts.AddonImageRef(a.Name, a.Version))
	}
	return r.stampedImagesInPlace(ctx, node, addonImagesStamp, want)
}

// AddonImages imports the images lab built for an offline lab's builtin
// add-ons on every Kubernetes node, as cni-images does with Cilium's.
// Other labs' nodes pull upstream's images; they have nothing to do here.
func (r *Run) AddonImages() workflow.Phase {
	if r.Lab.Kubernetes.Artifacts != labfile.ArtifactsBuild || len(r.builtinAddons()) == 0 {
		return workflow.Phase{Name: AddonImagesPhase, Title: "no add-on images to send (the nodes pull them, or no builtin add-on)",
			Nodes: func() []string { return nil }}
	}
	var names []string
	for _, a := range r.builtinAddons() {
		names = append(names, a.Name+" "+a.Version)
	}
	what := strings.Join(names, ", ")
	return workflow.Phase{
		Name:  AddonImagesPhase,
		Needs: needsFacts,
		Title: "the images of " + what + " into containerd on every node, from this machine",
		Nodes: r.kubeNodes,
		Done:  r.addonImagesInPlace,
		Run: func(ctx context.Context, node string) error {
			sets, err := r.addonSets(ctx, AddonImagesPhase)
			if err != nil {
				return err
			}
			conn, err := r.Conn(ctx, node)
			if err != nil {
				return err
			}
			images, paths := addonImages(sets)
			missing, err := missingOf(ctx, conn, images)
			if err != nil {
				return err
			}
			if err := importImages(ctx, conn, missing, func(d string) string { return paths[d] }); err != nil {
				return err
			}
			if len(missing) > 0 {
				r.info(AddonImagesPhase, node, "imported %d add-on images", len(missing))
			}
			_, err = conn.Upload(ctx, []templates.File{{Path: addonImagesStamp, Mode: 0o644, Content: addonStamp(sets, images)}})
			return err
		},
		Describe: func(string) []string {
			return []string{
				"find the images of " + what + " in the artifact cache, else build them from their Go modules (once)",
				"import the images containerd lacks (ctr -n k8s.io images import); record them in " + addonImagesStamp,
			}
		},
	}
}

// addonFiles are the add-ons' values files on node, with helm unless an
// offline lab's sets bring it.
func (r *Run) addonFiles(ctx context.Context, node string) ([]templates.File, error) {
	files, err := r.files(node, nodefiles.Addons)
	if err != nil {
		return nil, err
	}
	return r.withHelm(ctx, node, files)
}

// addonChart is where helm takes add-on a's chart from on the first
// control plane: a file lab sends, or a chart in a repository (then repo
// is the --repo argument, "" for an oci:// reference).
func addonChart(a *labfile.Addon) (chart, repo string) {
	switch {
	case a.Repo == "":
		return addons.ChartPath(a.Name), ""
	case strings.HasPrefix(a.Repo, "oci://"):
		return strings.TrimSuffix(a.Repo, "/") + "/" + a.Chart, ""
	default:
		return a.Chart, a.Repo
	}
}

// addonScript installs or upgrades add-on a and waits for it.
func addonScript(a *labfile.Addon) string {
	chart, repo := addonChart(a)
	version := ""
	if a.Repo != "" {
		version = a.Version
	}
	return script(addonSh, adminConf, a.Name, chart, a.Namespace, addons.ValuesPath(a.Name),
		strconv.Itoa(int(addonTimeout.Seconds())), version, repo)
}

// addonRelease is one line of `helm list -o json`.
type addonRelease struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Chart  string `json:"chart"`
}

// addonDeployed reads what addon_status.sh printed: whether the release
// is deployed, from a chart named chart ("" for any; a trailing "-"
// matches any version), with exactly values.
func addonDeployed(out, release, chart string, values map[string]any) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var lines []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		return false
	}
	var rels []addonRelease
	if err := json.Unmarshal([]byte(lines[0]), &rels); err != nil || len(rels) != 1 {
		return false
	}
	rel := rels[0]
	if rel.Name != release || rel.Status != "deployed" {
		return false
	}
	if chart != "" && !(strings.HasSuffix(chart, "-") && strings.HasPrefix(rel.Chart, chart)) && rel.Chart != chart {
		return false
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		return false
	}
	want, err := jsonValues(values)
	if err != nil {
		return false
	}
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	return reflect.DeepEqual(got, want)
}

// jsonValues is v as helm prints it in JSON: every number a float64.
func jsonValues(v map[string]any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(data, &out)
}

// expectedChart is the chart helm list should show for add-on a: name and
// version where lab knows them without gathering, "<name>-" for any
// version of a builtin's chart (its values pin the release), "" when only
// helm knows (a .tgz).
func (r *Run) expectedChart(a *labfile.Addon) string {
	switch {
	case a.IsBuiltin():
		return a.Name + "-"
	case a.Repo != "":
		return path.Base(a.Chart) + "-" + a.Version
	}
	p := r.Lab.ChartPath(a)
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		if name, v, err := artifacts.ChartNameVersion(p); err == nil {
			return name + "-" + v
		}
	}
	return ""
}

// addonInstalled reports whether add-on a is deployed on the cluster as
// the lab file says. It only reads.
func (r *Run) addonInstalled(ctx context.Context, node string, a *labfile.Addon) (bool, error) {
	values, err := addons.Values(r.Lab, a)
	if err != nil {
		return false, err
	}
	out, err := r.run(ctx, node, script(addonStatusSh, adminConf, a.Name, a.Namespace))
	if err != nil {
		return false, err
	}
	return addonDeployed(out, a.Name, r.expectedChart(a), values), nil
}

// addonCharts are the charts the addons phase sends from this machine:
// the builtins' from their sets, local chart add-ons' as they are or
// packed into tmp.
func (r *Run) addonCharts(sets map[string]*artifacts.AddonSet, tmp string) ([]LocalFile, error) {
	var out []LocalFile
	for _, a := range r.Lab.InstalledAddons() {
		dst := addons.ChartPath(a.Name)
		switch {
		case a.IsBuiltin():
			s := sets[a.Name]
			if s == nil {
				return nil, fmt.Errorf("add-on %s: no set was gathered for it", a.Name)
			}
			out = append(out, LocalFile{Src: s.ChartPath(), Dst: dst, Mode: 0o644})
		case a.Repo == "":
			p := r.Lab.ChartPath(a)
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("add-on %s: chart: %w", a.Name, err)
			}
			if fi.IsDir() {
				tgz := filepath.Join(tmp, a.Name+".tgz")
				if _, _, err := artifacts.PackChart(p, tgz); err != nil {
					return nil, fmt.Errorf("add-on %s: %w", a.Name, err)
				}
				p = tgz
			}
			out = append(out, LocalFile{Src: p, Dst: dst, Mode: 0o644})
		}
	}
	return out, nil
}

// Addons installs the lab's add-ons with helm upgrade --install from the
// first control plane, in file order, each waited for: the builtins from
// their modules' charts (with the images addon-images imported, on an
// offline lab), chart add-ons from a chart on this machine or their
// repository.
func (r *Run) Addons() workflow.Phase {
	list := r.Lab.InstalledAddons()
	if len(list) == 0 {
		return workflow.Phase{Name: nodefiles.Addons, Title: "no add-ons", Nodes: func() []string { return nil }}
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	return workflow.Phase{
		Name:  nodefiles.Addons,
		Needs: []string{FactsPhase, AddonImagesPhase},
		Title: "add-ons with helm upgrade --install: " + strings.Join(names, ", "),
		Order: workflow.Serial,
		Nodes: func() []string { return []string{r.firstControlPlane()} },
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := r.addonFiles(ctx, node)
			if err != nil {
				return false, err
			}
			if ok, err := r.inPlace(ctx, node, files, "test -x "+nodeHelm); err != nil || !ok {
				return false, err
			}
			for _, a := range list {
				if ok, err := r.addonInstalled(ctx, node, a); err != nil || !ok {
					return false, err
				}
			}
			return true, nil
		},
		Run: func(ctx context.Context, node string) error {
			sets, err := r.addonSets(ctx, nodefiles.Addons)
			if err != nil {
				return err
			}
			files, err := r.addonFiles(ctx, node)
			if err != nil {
				return err
			}
			tmp, err := os.MkdirTemp("", "lab-addons-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			local, err := r.addonCharts(sets, tmp)
			if err != nil {
				return err
			}
			conn, err := r.Conn(ctx, node)
			if err != nil {
				return err
			}
			if !hasFile(files, nodeHelm) {
				if h := addonHelm(sets); h != "" {
					local = append(local, LocalFile{Src: h, Dst: nodeHelm, Mode: 0o755})
				} else if _, err := conn.Run(ctx, "test -x "+nodeHelm); err != nil {
					return fmt.Errorf("no helm for the add-ons on %s: an offline lab (kubernetes.artifacts: build) brings helm with Cilium (cni: cilium) or with a builtin add-on (%s), and this lab has neither; add one",
						node, strings.Join(builtinNames(), ", "))
				}
			}
			if _, err := uploadLocal(ctx, conn, local); err != nil {
				return err
			}
			if _, err := conn.Upload(ctx, files); err != nil {
				return err
			}
			for _, a := range list {
				t := time.Now()
				r.info(nodefiles.Addons, node, "%s: helm upgrade --install in namespace %s", a.Name, a.Namespace)
				if _, err := conn.Run(ctx, addonScript(a)); err != nil {
					return fmt.Errorf("add-on %s: %w", a.Name, err)
				}
				r.info(nodefiles.Addons, node, "%s: deployed in %s", a.Name, time.Since(t).Round(time.Second))
			}
			return nil
		},
		Describe: func(string) []string {
			var out []string
			for _, a := range list {
				chart, repo := addonChart(a)
				from := "the chart lab sends to " + chart
				switch {
				case a.IsBuiltin():
					b, _ := labfile.Builtin(a.Name)
					from = b.Module + "@" + a.Version + "'s chart, sent to " + chart
				case repo != "":
					from = "chart " + chart + " " + a.Version + " from " + repo
				case a.Repo != "":
					from = chart + " " + a.Version
				}
				out = append(out, "helm upgrade --install "+a.Name+" -n "+a.Namespace+" -f "+addons.ValuesPath(a.Name)+" --wait: "+from)
			}
			return out
		},
	}
}

// addonHelm is the helm an offline lab's add-on sets bring, or "".
func addonHelm(sets map[string]*artifacts.AddonSet) string {
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if h := sets[n].HelmPath(); h != "" {
			return h
		}
	}
	return ""
}

// builtinNames are the builtin add-ons' names.
func builtinNames() []string {
	var out []string
	for _, b := range labfile.BuiltinAddons() {
		out = append(out, b.Name)
	}
	return out
}
