// Package state owns a lab's directory on the machine that runs lab: its
// known_hosts, the journal of completed phases, generated secrets and the
// admin kubeconfig. The directory is 0700 and every file in it 0600, because
// it holds the keys to the cluster.
package state

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labctl/lab/internal/atomicfile"
	"github.com/labctl/lab/internal/filelock"
)

// Dir is one lab's state directory.
type Dir struct {
	path string
	mu   sync.Mutex // guards the journal file between goroutines
}

// Open creates (if needed) and opens the state directory of lab name under
// root. An existing directory with looser permissions is tightened.
func Open(root, name string) (*Dir, error) {
	d, err := Look(root, name)
	if err != nil {
		return nil, err
	}
	p := d.path
	if err := os.MkdirAll(p, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := os.Chmod(p, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &Dir{path: p}, nil
}

// Look names the state directory of lab name under root without creating
// or changing anything, for a command that must not write (lab up
// --dry-run): the directory may not exist, and then every file in it reads
// as missing.
func Look(root, name string) (*Dir, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("state: invalid lab name %q", name)
	}
	return &Dir{path: filepath.Join(root, name)}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// File returns the path of a file inside the directory.
func (d *Dir) File(name string) string { return filepath.Join(d.path, name) }

// KnownHosts is the lab's own known_hosts file: nodes recreated on reused
// addresses never touch the user's ~/.ssh/known_hosts.
func (d *Dir) KnownHosts() string { return d.File("known_hosts") }

// Kubeconfig is the admin kubeconfig written by lab up.
func (d *Dir) Kubeconfig() string { return d.File("admin.conf") }

// WriteFile writes name atomically with mode 0600: a crash leaves the old
// content or the new, never half of it.
func (d *Dir) WriteFile(name string, data []byte) error {
	if err := atomicfile.WriteFile(d.File(name), data, 0o600); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// ReadFile reads a file of the directory.
func (d *Dir) ReadFile(name string) ([]byte, error) { return os.ReadFile(d.File(name)) }

// Remove deletes the whole directory (lab down).
func (d *Dir) Remove() error { return os.RemoveAll(d.path) }

// Lock is held by one lab command at a time.
type Lock struct{ f *os.File }

// ErrLocked is returned when another live process holds the lab's lock.
var ErrLocked = errors.New("locked")

// Lock takes the lab's lock without waiting. The lock is a file lock
// (internal/filelock) on a file that also records the holder's pid and
// command: the system drops the lock when its holder dies, so a lock left by a killed lab is taken over
// (staleHolder then says whose it was).
func (d *Dir) Lock(command string) (l *Lock, staleHolder string, err error) {
	f, err := os.OpenFile(d.File("lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("state: %w", err)
	}
	prev, _ := os.ReadFile(f.Name())
	ok, err := filelock.TryLock(f)
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("state: %w", err)
	}
	if !ok {
		f.Close()
		holder := strings.TrimSpace(string(prev))
		if holder == "" {
			holder = "another process"
		}
		return nil, "", fmt.Errorf("lab %s is busy: %s holds %s (%w); wait for it or stop it",
			filepath.Base(d.path), holder, d.File("lock"), ErrLocked)
	}
	if s := strings.TrimSpace(string(prev)); s != "" {
		staleHolder = s
	}
	me := fmt.Sprintf("pid %d (lab %s, since %s)", os.Getpid(), command, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(me+"\n"), 0)
		_ = f.Sync()
	}
	return &Lock{f: f}, staleHolder, nil
}

// Unlock releases the lock and clears the holder record.
func (l *Lock) Unlock() error {
	_ = l.f.Truncate(0)
	err := filelock.Unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Secrets are generated once per lab and reused by every later run, so a
// resumed `lab up` joins nodes with the same token and certificate key.
type Secrets struct {
	BootstrapToken string `json:"bootstrapToken"`
	CertificateKey string `json:"certificateKey"`
}

// Secrets returns the lab's secrets, generating and saving them on first use.
func (d *Dir) Secrets() (Secrets, error) {
	var s Secrets
	data, err := d.ReadFile("secrets.json")
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &s); err != nil {
			return s, fmt.Errorf("state: %s is damaged; delete it to generate new secrets: %w", d.File("secrets.json"), err)
		}
		return s, nil
	case !errors.Is(err, fs.ErrNotExist):
		return s, fmt.Errorf("state: %w", err)
	}
	if s, err = NewSecrets(); err != nil {
		return s, err
	}
	data, _ = json.MarshalIndent(s, "", "  ")
	return s, d.WriteFile("secrets.json", data)
}

// NewSecrets generates a kubeadm bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})
// and a 32-byte certificate key, both from crypto/rand.
func NewSecrets() (Secrets, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	buf := make([]byte, 22)
	if _, err := rand.Read(buf); err != nil {
		return Secrets{}, err
	}
	tok := make([]byte, 0, 23)
	for i, b := range buf {
		if i == 6 {
			tok = append(tok, '.')
		}
		// 256 % 36 leaves a bias of under 1%: irrelevant for a token that
		// lives for hours on a lab network.
		tok = append(tok, alphabet[int(b)%len(alphabet)])
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return Secrets{}, err
	}
	return Secrets{BootstrapToken: string(tok), CertificateKey: hex.EncodeToString(key)}, nil
}

// Entry is one completed phase on one node.
type Entry struct {
	Phase string    `json:"phase"`
	Node  string    `json:"node"`
	At    time.Time `json:"at"`
	// Seconds is how long the phase took on the node.
	Seconds float64 `json:"seconds"`
}

// Record appends a completed phase to the journal.
func (d *Dir) Record(e Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	j, err := d.journal()
	if err != nil {
		return err
	}
	j[e.Phase+"/"+e.Node] = e
	return d.saveJournal(j)
}

// Journal returns every recorded entry, ordered by time.
func (d *Dir) Journal() ([]Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j, err := d.journal()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(j))
	for _, e := range j {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].At.Equal(out[b].At) {
			return out[a].At.Before(out[b].At)
		}
		return out[a].Phase+out[a].Node < out[b].Phase+out[b].Node
	})
	return out, nil
}

// ClearJournal forgets every completed phase (lab reset).
func (d *Dir) ClearJournal() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := os.Remove(d.File("journal.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (d *Dir) journal() (map[string]Entry, error) {
	j := map[string]Entry{}
	data, err := d.ReadFile("journal.json")
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &j); err != nil {
		// A journal is a cache of what was done; phases re-check the nodes
		// themselves, so a damaged one is dropped rather than fatal.
		return map[string]Entry{}, nil
	}
	return j, nil
}

func (d *Dir) saveJournal(j map[string]Entry) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return d.WriteFile("journal.json", data)
}
