//go:build !halley_faultfs

package main

import "github.com/cockroachdb/pebble/v2/vfs"

// storageFaults is nil in every real build; see faultfs_on.go.
var storageFaults func() vfs.FS
