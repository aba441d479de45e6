package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// sedq escapes s for use inside a sed /regex/ between single quotes.
func sedq(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `/`, `\/`, `.`, `\.`, `*`, `\*`, `[`, `\[`, `]`, `\]`, `^`, `\^`, `$`, `\$`, `'`, `'\''`)
	return r.Replace(s)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// freshCheck is a shell command that succeeds when unit is active and was
// started no earlier than each file was last written: the service runs the
// configuration on disk. A lab up killed between installing a file and
// restarting its service leaves the file in place and the service stale;
// this is how the next run notices. (Timestamps have one-second
// resolution.)
func freshCheck(unit string, files ...string) string {
	return fmt.Sprintf(`(systemctl is-active --quiet %[1]s && t=$(systemctl show -p ActiveEnterTimestamp --value %[1]s) && [ -n "$t" ] && s=$(date -d "$t" +%%s) && for f in %[2]s; do [ "$(stat -c %%Y "$f")" -le "$s" ] || exit 1; done)`,
		shq(unit), strings.Join(quoteAll(files), " "))
}
