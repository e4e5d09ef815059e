//go:build !linux

package main

import "syscall"

// childAttr: no parent-death signal outside Linux; nodes outlive a
// killed supervisor there.
func childAttr() *syscall.SysProcAttr { return nil }
