package e2etest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ScratchImage packs one static program into an image FROM scratch and
// writes it to dst as a docker-archive tarball tagged ref, the form
// `ctr -n k8s.io images import` reads. The nodes of a lab reach no
// registry, so a test that runs its own pods imports images like this one
// on every node and runs them with imagePullPolicy: Never.
//
// The program lands at /FILE and is
// the image's entrypoint; the image is for the machine's own architecture,
// which is the nodes' (they are containers on it).
func ScratchImage(program, file, ref, dst string) error {
	tag, err := nameTag(ref)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(program)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	// A fixed time: the same program gives the same layer.
	hdr := &tar.Header{Name: file, Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	if _, err := tw.Write(bin); err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer.Bytes())), nil
	})
	if err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image %s: config: %w", ref, err)
	}
	cfg = cfg.DeepCopy()
	// ctr imports only the platforms it runs on: without these the
	// import finds no image for the node.
	cfg.OS = "linux"
	cfg.Architecture = runtime.GOARCH
	cfg.Config.Entrypoint = []string{"/" + file}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("image %s: config: %w", ref, err)
	}
	if err := tarball.WriteToFile(dst, tag, img); err != nil {
		return fmt.Errorf("image %s: write %s: %w", ref, dst, err)
	}
	return nil
}

// nameTag parses ref strictly: a test's image must name its own registry
// (such as lab.local), never default to Docker Hub.
func nameTag(ref string) (name.Tag, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return tag, nil
}
