package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/lab/provision/artifacts"
	"github.com/labctl/lab/provision/labfile"
	"github.com/labctl/lab/provision/workflow"
	"github.com/labctl/lab/templates"
	"github.com/labctl/lab/templates/nodefiles"
)

// CNIImagesPhase puts Cilium's images into containerd on every node
// before the cni phase installs the chart, so that no agent waits for a
// registry the nodes may not reach.
const CNIImagesPhase = "cni-images"

// Where Cilium's files from this machine go on the nodes. All of it is
// under /etc/lab, which reset removes.
const (
	ciliumDir = "/etc/lab/cilium"
	// ciliumImagesStamp lists the images the cni-images phase imported
	// on the node, "<ref> <id>" a line after a "# set <key>" comment:
	// the Done check compares containerd with it, without the set.
	ciliumImagesStamp = ciliumDir + "/images"
	// ciliumTimeout bounds helm's wait for the release and the agents'
	// rollout.
	ciliumTimeout = 10 * time.Minute
)

// ciliumChartPath is where the cni phase puts version's chart on the first
// control plane.
func ciliumChartPath(version string) string {
	return ciliumDir + "/cilium-" + version + ".tgz"
}

// CiliumSource returns the Cilium set (images and chart) of version for
// nodes of architecture arch (Go's name, e.g. amd64). See Sources.Cilium.
type CiliumSource func(ctx context.Context, version, arch string) (*artifacts.CiliumSet, error)

// ciliumGathered is the lab's Cilium set for one command, gathered once,
// whichever phase asks first. Done checks never ask: they compare the
// nodes with what Run recorded there.
type ciliumGathered struct {
	mu   sync.Mutex
	done bool
	set  *artifacts.CiliumSet
	err  error
}

// ciliumSet returns the lab's Cilium set: from Sources.Cilium when it is
// set; else, for an offline lab (kubernetes.artifacts: build), from the
// build source through the artifact cache; other labs have no source yet.
func (r *Run) ciliumSet(ctx context.Context) (*artifacts.CiliumSet, error) {
	g := &r.cilium
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		g.done = true
		g.set, g.err = r.gatherCilium(ctx)
	}
	return g.set, g.err
}

func (r *Run) gatherCilium(ctx context.Context) (*artifacts.CiliumSet, error) {
	v := r.Lab.CNI.Cilium.Version
	a := r.Lab.Kubernetes.Artifacts
	arch, err := r.artifactArch()
	if err != nil {
		return nil, err
	}
	var s *artifacts.CiliumSet
	if r.Sources.Cilium != nil {
		s, err = r.Sources.Cilium(ctx, v, arch)
	} else {
		s, err = r.gatherCiliumSet(ctx, v, arch)
	}
	if err != nil {
		return nil, fmt.Errorf("Cilium %s for %s: %w", v, arch, err)
	}
	if s == nil {
		return nil, fmt.Errorf("Cilium %s for %s: the Cilium source returned no set and no error", v, arch)
	}
	if err := checkCiliumSet(s, v, arch, a == labfile.ArtifactsBuild); err != nil {
		return nil, err
	}
	return s, nil
}

// gatherCiliumSet takes the set from the artifact cache, or makes it
// there: built from github.com/cilium/cilium with the node image's Debian
// userland for an offline lab (kubernetes.artifacts: build), the chart
// alone for labs whose nodes pull upstream's images.
func (r *Run) gatherCiliumSet(ctx context.Context, v, arch string) (*artifacts.CiliumSet, error) {
	lay, err := artifacts.NewLayout(r.Sources.CacheDir)
	if err != nil {
		return nil, err
	}
	source := artifacts.SourceRelease
	if r.Lab.Kubernetes.Artifacts == labfile.ArtifactsBuild {
		source = artifacts.SourceBuild
		r.info(CNIImagesPhase, "", "artifacts: Cilium %s for %s from the build source (cache %s)", v, arch, lay.ArtifactsDir())
	}
	log := &lineWriter{emit: func(line string) { r.info(CNIImagesPhase, "", "%s", line) }}
	o := artifacts.CiliumGatherOptions{Version: v, Arch: arch, Source: source, Log: log}
	if u := r.Sources.Userland; u != nil {
		o.Userland = func() (string, error) { return u(lay.NodeImageDir()) }
	}
	s, found, err := lay.Cache().GatherCilium(ctx, o)
	log.Flush()
	if found && s != nil && source == artifacts.SourceBuild {
		r.info(CNIImagesPhase, "", "artifacts: Cilium %s found in the cache (set %s)", v, s.Key)
	}
	return s, err
}

// checkCiliumSet makes sure set s is what the lab asks for before any of
// it reaches a node: its version and architecture, a chart on this
// machine, and, for an offline lab, the three images its values name.
func checkCiliumSet(s *artifacts.CiliumSet, v, arch string, build bool) error {
	where := fmt.Sprintf("Cilium set %s", s.Key)
	if got := strings.TrimPrefix(s.Version, "v"); got != v {
		return fmt.Errorf("%s is Cilium %s, the lab asks for %s", where, got, v)
	}
	if s.Arch != "" && s.Arch != arch {
		return fmt.Errorf("%s is for %s, the nodes are %s", where, s.Arch, arch)
	}
	if s.Chart.Digest == "" {
		return fmt.Errorf("%s has no Helm chart", where)
	}
	if _, err := os.Stat(s.ChartPath()); err != nil {
		return fmt.Errorf("%s: its chart: %w", where, err)
	}
	if !build {
		return nil
	}
	have := map[string]bool{}
	for _, im := range s.Images {
		have[im.Ref] = true
	}
	refs := artifacts.CiliumImageRefs(v)
	for _, ref := range []string{refs.Agent, refs.Operator, refs.Relay} {
		if !have[ref] {
			return fmt.Errorf("%s lacks image %s, which an offline lab's values name; build the set again", where, ref)
		}
	}
	return nil
}

// ciliumStamp is the content of ciliumImagesStamp for s.
func ciliumStamp(s *artifacts.CiliumSet) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# set %s\n", s.Key)
	lines := make([]string, 0, len(s.Images))
	for _, im := range s.Images {
		lines = append(lines, im.Ref+" "+im.ID)
	}
	sort.Strings(lines)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return []byte(b.String())
}

// parseImageStamp reads ciliumImagesStamp: the images a node was given,
// by reference and ID. ok is false for no stamp at all.
func parseImageStamp(out string) (images []artifacts.Image, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# set ") {
			ok = true
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ref, id, found := strings.Cut(line, " ")
		if !found || ref == "" || id == "" {
			return nil, false
		}
		images = append(images, artifacts.Image{Ref: ref, ID: id})
	}
	return images, ok
}

// ciliumImagesInPlace reports whether node was given a Cilium set's
// images and containerd still holds each with the ID it had then. It only
// reads.
func (r *Run) ciliumImagesInPlace(ctx context.Context, node string) (bool, error) {
	return r.stampedImagesInPlace(ctx, node, ciliumImagesStamp, nil)
}

// stampedImagesInPlace reports whether node has the image stamp at path
// (see ciliumImagesStamp) naming every reference in want, and containerd
// still holds each image it lists with the ID it had then. It only reads.
func (r *Run) stampedImagesInPlace(ctx context.Context, node, path string, want []string) (bool, error) {
	conn, err := r.Conn(ctx, node)
	if err != nil {
		return false, err
	}
	out, err := conn.Run(ctx, "cat "+path+" 2>/dev/null; true")
	if err != nil {
		return false, err
	}
	images, ok := parseImageStamp(out)
	if !ok {
		return false, nil
	}
	have := map[string]bool{}
	for _, im := range images {
		have[im.Ref] = true
	}
	for _, ref := range want {
		if !have[ref] {
			return false, nil
		}
	}
	missing, err := missingOf(ctx, conn, images)
	return err == nil && len(missing) == 0, err
}

// installCiliumImages imports the set's images containerd lacks on node,
// then records them in the stamp.
func (r *Run) installCiliumImages(ctx context.Context, node string, s *artifacts.CiliumSet) error {
	conn, err := r.Conn(ctx, node)
	if err != nil {
		return err
	}
	missing, err := missingOf(ctx, conn, s.Images)
	if err != nil {
		return err
	}
	if err := importImages(ctx, conn, missing, s.Path); err != nil {
		return err
	}
	if len(missing) > 0 {
		r.info(CNIImagesPhase, node, "imported %d Cilium images", len(missing))
	}
	_, err = conn.Upload(ctx, []templates.File{{Path: ciliumImagesStamp, Mode: 0o644, Content: ciliumStamp(s)}})
	return err
}

// CNIImages puts the Cilium set's images (agent, operator, Hubble Relay
// for an offline lab) into containerd on every Kubernetes node, as the
// kubernetes phase does with Kubernetes' images. Labs without Cilium have
// nothing to do here.
func (r *Run) CNIImages() workflow.Phase {
	if r.Lab.CNI.Type != labfile.CNICilium {
		return workflow.Phase{Name: CNIImagesPhase, Title: "no images for the pod network (cni: " + r.Lab.CNI.Type + ")",
			Nodes: func() []string { return nil }}
	}
	v := r.Lab.CNI.Cilium.Version
	return workflow.Phase{
		Name:  CNIImagesPhase,
		Needs: needsFacts,
		Title: "Cilium " + v + "'s images into containerd on every node, from this machine",
		Nodes: r.kubeNodes,
		Done:  r.ciliumImagesInPlace,
		Run: func(ctx context.Context, node string) error {
			s, err := r.ciliumSet(ctx)
			if err != nil {
				return err
			}
			return r.installCiliumImages(ctx, node, s)
		},
		Describe: func(string) []string {
			var gather string
			switch {
			case r.Sources.Cilium != nil:
				gather = "gather Cilium " + v + "'s images and chart from the Cilium source lab was given (once)"
			case r.Lab.Kubernetes.Artifacts == labfile.ArtifactsBuild:
				gather = "find Cilium " + v + "'s images and chart in the artifact cache, else build them from github.com/cilium/cilium (once)"
			default:
				gather = "find Cilium " + v + "'s chart in the artifact cache, else take it from the github.com/cilium/cilium module (once); the nodes pull upstream's images"
			}
			return []string{gather, "import the images containerd lacks (ctr -n k8s.io images import); record them in " + ciliumImagesStamp}
		},
	}
}

// ciliumScript installs or upgrades Cilium from the chart lab uploaded,
// with the values lab uploaded, then waits for its agents.
func ciliumScript(chart string) string {
	return script(ciliumSh, adminConf, chart, templates.CiliumValuesPath, strconv.Itoa(int(ciliumTimeout.Seconds())))
}

// ciliumRelease is one line of `helm list -o json`.
type ciliumRelease struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Chart  string `json:"chart"`
}

// ciliumDeployed reads `helm list -o json`: whether release cilium is
// deployed from the chart of version v.
func ciliumDeployed(out, v string) bool {
	var rels []ciliumRelease
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rels); err != nil {
		return false
	}
	for _, rel := range rels {
		if rel.Name == "cilium" {
			return rel.Status == "deployed" && rel.Chart == "cilium-"+v
		}
	}
	return false
}

// nodeHelm is where the cni phase puts helm on the first control plane.
const nodeHelm = "/usr/local/bin/helm"

func hasFile(files []templates.File, path string) bool {
	for _, f := range files {
		if f.Path == path {
			return true
		}
	}
	return false
}

// ciliumChart is the chart's .tgz as the cni phase sends it.
func ciliumChart(s *artifacts.CiliumSet, v string) LocalFile {
	return LocalFile{Src: s.ChartPath(), Dst: ciliumChartPath(v), Mode: 0o644}
}

// ciliumCNI is the cni phase of a Cilium lab: on the first control plane,
// the chart from this machine and the values lab renders, then helm
// upgrade --install from that file. The cni-images phase has put the
// images on every node first.
func (r *Run) ciliumCNI() workflow.Phase {
	v := r.Lab.CNI.Cilium.Version
	chart := ciliumChartPath(v)
	return workflow.Phase{
		Name:  nodefiles.CNI,
		Needs: []string{FactsPhase, CNIImagesPhase},
		Title: "Cilium " + v + " with helm upgrade --install, from the chart on this machine",
		Order: workflow.Serial,
		Nodes: func() []string { return []string{r.firstControlPlane()} },
		Done: func(ctx context.Context, node string) (bool, error) {
			files, err := r.ciliumFiles(ctx, node)
			if err != nil {
				return false, err
			}
			if ok, err := r.inPlace(ctx, node, files, "test -s "+shq(chart)+" && test -x "+nodeHelm); err != nil || !ok {
				return false, err
			}
			out, err := r.run(ctx, node, script(ciliumStatusSh, adminConf))
			return err == nil && ciliumDeployed(out, v), nil
		},
		Run: func(ctx context.Context, node string) error {
			s, err := r.ciliumSet(ctx)
			if err != nil {
				return err
			}
			files, err := r.ciliumFiles(ctx, node)
			if err != nil {
				return err
			}
			conn, err := r.Conn(ctx, node)
			if err != nil {
				return err
			}
			local := []LocalFile{ciliumChart(s, v)}
			if h := s.HelmPath(); h != "" && !hasFile(files, nodeHelm) {
				local = append(local, LocalFile{Src: h, Dst: nodeHelm, Mode: 0o755})
			}
			if _, err := uploadLocal(ctx, conn, local); err != nil {
				return err
			}
			_, err = r.install(ctx, node, files, ciliumScript(chart))
			return err
		},
		Describe: func(string) []string {
			return []string{
				"send Cilium " + v + "'s chart to " + chart + " and write " + templates.CiliumValuesPath,
				"helm upgrade --install cilium " + chart + " -n kube-system -f " + templates.CiliumValuesPath + " --wait; wait for the agents",
			}
		},
	}
}
