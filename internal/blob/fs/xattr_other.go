//go:build !linux

package fs

func setAttr(string, string) {}

func getAttr(string) (string, bool) { return "", false }
