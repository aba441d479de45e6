// Package fetch brings remote sources to the machine that runs lab: a lab
// file or an artifact from http(s) or git, verified by checksum, through
// hashicorp/go-getter with only the getters lab needs (no cloud SDKs).
package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/labctl/lab/internal/atomicfile"
)

// IsRemote reports whether src names a remote source rather than a local
// path: a URL (https://, http://, file://) or a forced getter (git::...).
func IsRemote(src string) bool {
	return strings.Contains(src, "://") || strings.HasPrefix(src, "git::")
}

// client knows http(s), local files and git. go-getter's default set would
// also try S3, GCS and Mercurial; lab never needs them.
func client() *getter.Client {
	return &getter.Client{
		Getters: []getter.Getter{
			&getter.HttpGetter{XTerraformGetDisabled: true},
			new(getter.FileGetter),
			&getter.GitGetter{},
		},
		DisableSymlinks: true,
	}
}

// File downloads one file from src to dst. A checksum in src
// (?checksum=sha256:HEX, or sha256:file:URL-of-a-SHA256SUMS) is verified
// before dst appears; on a mismatch dst is not written. For git, src is
// git::REPO//PATH[?ref=REF] and PATH is the file inside the repository.
func File(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if repo, path, ok := splitGit(src); ok {
		return gitFile(ctx, repo, path, dst)
	}
	tmp := dst + ".part"
	defer os.Remove(tmp)
	_, err := client().Get(ctx, &getter.Request{Src: src, Dst: tmp, GetMode: getter.ModeFile, Copy: true})
	var sumErr *getter.ChecksumError
	if errors.As(err, &sumErr) {
		return fmt.Errorf("fetch %s: checksum mismatch: expected %x, got %x; the file changed or the checksum is wrong",
			redact(src), sumErr.Expected, sumErr.Actual)
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", redact(src), err)
	}
	return atomicfile.Replace(tmp, dst)
}

// splitGit splits git::REPO//PATH?query into REPO?query and PATH.
func splitGit(src string) (repo, path string, ok bool) {
	rest, ok := strings.CutPrefix(src, "git::")
	if !ok {
		return "", "", false
	}
	query := ""
	if i := strings.Index(rest, "?"); i >= 0 {
		rest, query = rest[:i], rest[i:]
	}
	scheme := strings.Index(rest, "://")
	i := strings.LastIndex(rest, "//")
	if i < 0 || i == scheme+1 {
		return "", "", false
	}
	return "git::" + rest[:i] + query, rest[i+2:], true
}

func gitFile(ctx context.Context, repo, path, dst string) error {
	dir, err := os.MkdirTemp(filepath.Dir(dst), ".git-fetch-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	checkout := filepath.Join(dir, "repo")
	if _, err := client().Get(ctx, &getter.Request{Src: repo, Dst: checkout, GetMode: getter.ModeDir, Copy: true}); err != nil {
		return fmt.Errorf("fetch %s: %w", redact(repo), err)
	}
	clean := filepath.Clean("/" + path)
	data, err := os.ReadFile(filepath.Join(checkout, clean))
	if err != nil {
		return fmt.Errorf("fetch %s: no %s in the repository", redact(repo), strings.TrimPrefix(clean, "/"))
	}
	return atomicfile.WriteFile(dst, data, 0o644)
}

// redact drops credentials from a URL before it appears in an error.
func redact(src string) string {
	prefix := ""
	if p, rest, ok := strings.Cut(src, "::"); ok && !strings.Contains(p, "/") {
		prefix, src = p+"::", rest
	}
	u, err := url.Parse(src)
	if err != nil || u.User == nil {
		return prefix + src
	}
	u.User = url.User("REDACTED")
	return prefix + u.String()
}
