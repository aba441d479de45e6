package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// FanOut calls fn for every item, at most limit at a time (limit <= 0:
// all at once). One item's failure does not stop the others: every error
// is kept, prefixed with its item's name unless it already starts with it,
// and returned joined (errors.Is and errors.As see each one). Items not
// started when ctx ends fail with ctx's error.
func FanOut[T any](ctx context.Context, items []T, limit int, name func(T) string, fn func(context.Context, T) error) error {
	if limit <= 0 || limit > len(items) {
		limit = len(items)
	}
	errs := make([]error, len(items))
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = context.Cause(ctx)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		n := name(items[i])
		if !strings.HasPrefix(err.Error(), n+": ") {
			errs[i] = fmt.Errorf("%s: %w", n, err)
		}
	}
	return errors.Join(errs...)
}

// Each connects to every target (reusing clients) and calls fn with its
// client, at most limit at a time; see FanOut for the errors.
func (t *Transport) Each(ctx context.Context, targets []Target, limit int, fn func(context.Context, *Client) error) error {
	return FanOut(ctx, targets, limit, Target.String, func(ctx context.Context, target Target) error {
		c, err := t.Client(ctx, target)
		if err != nil {
			return err
		}
		return fn(ctx, c)
	})
}
