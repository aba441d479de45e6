package artifacts

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// epoch is the time stamp of every file in an image, so that the same
// inputs always give the same bytes.
var epoch = time.Unix(0, 0).UTC()

// layerEntry is one file, directory or symbolic link of an image layer.
type layerEntry struct {
	// Name is the path in the image, without a leading slash.
	Name string
	Mode fs.FileMode // permission bits
	// Src is a local file with the content of a regular file; Data is
	// used when Src is empty.
	Src  string
	Data []byte
	// Section is the content of a regular file that lies in a larger file
	// (a root file system tarball), used when Src is empty.
	Section *io.SectionReader
	// Link makes the entry a symbolic link to Link.
	Link string
	Dir  bool
}

// imageSpec describes a single-layer image built FROM scratch.
type imageSpec struct {
	Ref        string
	Arch       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	// WorkingDir is the command's directory. Default: /.
	WorkingDir string
	// User is the user (uid:gid) the command runs as. Default: root.
	User  string
	Files []layerEntry
}

// dockerConfig is the part of the image configuration lab writes (the
// OCI image configuration, which Docker's is a superset of).
type dockerConfig struct {
	Created      time.Time `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       struct {
		Env        []string `json:"Env,omitempty"`
		Entrypoint []string `json:"Entrypoint,omitempty"`
		WorkingDir string   `json:"WorkingDir,omitempty"`
		// Cmd and User come after the fields Kubernetes' images use, and
		// only when set, so that those images' bytes stay as they were.
		Cmd  []string `json:"Cmd,omitempty"`
		User string   `json:"User,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	} `json:"history"`
}

// archiveManifest is one entry of a docker-archive's manifest.json, the
// format `docker save` writes and `ctr images import` reads.
type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// writeImage writes the image as a docker-archive tarball at dst, using
// work for a temporary layer file, and returns the image ID (the digest of
// its configuration). No daemon is involved: an image FROM scratch is one
// layer tarball, a configuration naming the layer's digest, and a manifest.
func writeImage(dst, work string, spec imageSpec) (id string, err error) {
	layer, err := os.CreateTemp(work, "layer-*.tar")
	if err != nil {
		return "", err
	}
	defer os.Remove(layer.Name())
	defer layer.Close()
	h := sha256.New()
	if err := writeLayer(io.MultiWriter(layer, h), spec.Files); err != nil {
		return "", fmt.Errorf("image %s: layer: %w", spec.Ref, err)
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))
	size, err := layer.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	if _, err := layer.Seek(0, io.SeekStart); err != nil {
		return "", err
	}

	var cfg dockerConfig
	cfg.Created = epoch
	cfg.Architecture = spec.Arch
	cfg.OS = "linux"
	cfg.Config.Env = spec.Env
	cfg.Config.Entrypoint = spec.Entrypoint
	cfg.Config.WorkingDir = "/"
	if spec.WorkingDir != "" {
		cfg.Config.WorkingDir = spec.WorkingDir
	}
	cfg.Config.Cmd = spec.Cmd
	cfg.Config.User = spec.User
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{diffID}
	cfg.History = append(cfg.History, struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	}{epoch, "lab artifacts: build"})
	cfgData, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cfgData)
	cfgHex := hex.EncodeToString(sum[:])
	layerHex := strings.TrimPrefix(diffID, "sha256:")
	man, err := json.Marshal([]archiveManifest{{
		Config:   cfgHex + ".json",
		RepoTags: []string{spec.Ref},
		Layers:   []string{layerHex + "/layer.tar"},
	}})
	if err != nil {
		return "", err
	}

	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: layerHex + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return "", err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: layerHex + "/layer.tar", Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return "", err
	}
	if _, err := io.Copy(tw, layer); err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	if err := put(cfgHex+".json", cfgData); err != nil {
		return "", err
	}
	if err := put("manifest.json", man); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return "sha256:" + cfgHex, nil
}

// writeLayer writes a layer tarball: the entries sorted by name, each
// preceded by any parent directory not listed, all owned by root and
// stamped with the epoch.
func writeLayer(w io.Writer, entries []layerEntry) error {
	es := append([]layerEntry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	for _, e := range es {
		if e.Dir {
			dirs[e.Name] = true
		}
	}
	written := map[string]bool{}
	for _, e := range es {
		var parents []string
		for d := path.Dir(e.Name); d != "." && d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if written[d] || dirs[d] {
				continue
			}
			written[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		if written[e.Name] {
			return fmt.Errorf("%s is listed twice", e.Name)
		}
		written[e.Name] = true
		hdr := &tar.Header{Name: e.Name, Mode: int64(e.Mode.Perm()), ModTime: epoch, Format: tar.FormatPAX}
		if e.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case e.Dir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, e.Name+"/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case e.Link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.Link, 0o777
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case e.Src != "":
			f, err := os.Open(e.Src)
			if err != nil {
				return err
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return err
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				f.Close()
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", e.Src, err)
			}
		case e.Section != nil:
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.Section.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := io.Copy(tw, io.NewSectionReader(e.Section, 0, e.Section.Size())); err != nil {
				return fmt.Errorf("%s: %w", e.Name, err)
			}
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.Data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(e.Data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
