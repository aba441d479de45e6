// Package artifactstest serves a Kubernetes release the way its official
// sites do — a download site with a checksum file beside every file, and a
// container registry speaking the distribution protocol — on loopback, for
// tests of the release artifact source.
package artifactstest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Mirror is a download site and a registry. Both close when the test ends.
type Mirror struct {
	// Site serves the files Publish adds; Registry is the registry, and
	// Repo its host:port, to be used as an image repository.
	Site, Registry *httptest.Server
	Repo           string

	mu       sync.Mutex
	files    map[string][]byte
	requests atomic.Int64
}

// New starts a Mirror.
func New(t testing.TB) *Mirror {
	m := &Mirror{files: map[string][]byte{}}
	m.Site = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		m.mu.Lock()
		data, ok := m.files[r.URL.Path]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(m.Site.Close)
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	m.Registry = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(m.Registry.Close)
	m.Repo = strings.TrimPrefix(m.Registry.URL, "http://")
	return m
}

// Publish serves content at urlPath with a .sha256 file beside it: the
// bare digest as dl.k8s.io writes it, or "digest  name" as GitHub
// releases do when sumWithName is set.
func (m *Mirror) Publish(urlPath string, content []byte, sumWithName bool) {
	sum := sha256.Sum256(content)
	line := hex.EncodeToString(sum[:])
	if sumWithName {
		line += "  " + path.Base(urlPath)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[urlPath] = content
	m.files[urlPath+".sha256"] = []byte(line + "\n")
}

// Set replaces what urlPath serves (its checksum file stays); nil removes
// it.
func (m *Mirror) Set(urlPath string, content []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if content == nil {
		delete(m.files, urlPath)
		return
	}
	m.files[urlPath] = content
}

// File returns what urlPath serves.
func (m *Mirror) File(urlPath string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files[urlPath]
}

// Requests counts the requests both servers have answered.
func (m *Mirror) Requests() int64 { return m.requests.Load() }
