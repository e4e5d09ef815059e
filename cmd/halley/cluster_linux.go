package main

import "syscall"

// childAttr makes a node die with `halley cluster` (SIGTERM, so it
// drains) even when the supervisor is killed without a chance to stop it.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} }
