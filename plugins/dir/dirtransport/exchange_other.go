//go:build !linux

package dirtransport

// exchange is not available here: the caller moves the old entry aside.
func exchange(a, b string) error { return errNoExchange }
