//go:build !halley_fault_backupcopy

package persist

// checkpoint is Pebble's checkpoint in every normal build; see
// backup_faultcopy.go for the planted fault the backup test uses.
func (s *Store) checkpoint(dir string) error { return s.pebbleCheckpoint(dir) }
