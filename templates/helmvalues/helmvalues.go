// Package helmvalues merges Helm chart values the way lab layers them: the
// values lab derives from the lab file, the user's values over them, and
// what lab must force over both.
package helmvalues

import (
	"fmt"
	"strconv"
)

// Merge returns base with over merged into it: where both hold a map the
// maps are merged key by key, otherwise over's value wins (an explicit null
// included, which Helm then reads as "remove this key"). Neither argument
// is modified.
func Merge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = clone(v)
	}
	for k, v := range over {
		bm, bok := out[k].(map[string]any)
		om, ook := v.(map[string]any)
		if bok && ook {
			out[k] = Merge(bm, om)
			continue
		}
		out[k] = clone(v)
	}
	return out
}

func clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return Merge(t, nil)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = clone(t[i])
		}
		return out
	default:
		return v
	}
}

// Normalize turns the user's values, as the YAML decoder left them, into
// maps with string keys all the way down (a mapping with a non-string key
// decodes as map[any]any), so that Merge sees every map.
func Normalize(m map[string]any, path string) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		n, err := normalizeValue(v, path+"."+k)
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, nil
}

func normalizeValue(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		return Normalize(t, path)
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			s, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v is not a string (quote it)", path, k)
			}
			m[s] = x
		}
		return Normalize(m, path)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			n, err := normalizeValue(t[i], path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	default:
		return v, nil
	}
}
