package tlog

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// SignNote signs text as a C2SP signed note with the log's key, for
// statements other than checkpoints (an evidence bundle's manifest). A text
// that could be read as a checkpoint body (first line the log's origin) is
// refused: checkpoints are signed only by Checkpoint.
func (l *Log) SignNote(text string) ([]byte, error) {
	first, _, _ := strings.Cut(text, "\n")
	if first == l.signer.Name() {
		return nil, errors.New("tlog: refusing to sign a note that reads as a checkpoint")
	}
	return note.Sign(&note.Note{Text: text}, l.signer)
}

// VerifyInclusion checks that entry (its canonical bytes) is the leaf at
// index of the tree cp signs, with the RFC 6962 inclusion proof p.
func VerifyInclusion(cp Checkpoint, index uint64, entry []byte, p [][]byte) error {
	if index >= cp.Size {
		return fmt.Errorf("entry %d is not covered by the checkpoint of size %d", index, cp.Size)
	}
	if err := proof.VerifyInclusion(hasher, index, cp.Size, LeafHash(entry), p, cp.Root); err != nil {
		return fmt.Errorf("entry %d: inclusion proof to the checkpoint of size %d does not verify: %w", index, cp.Size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree newer signs extends the tree old
// signs, with the RFC 6962 consistency proof p.
func VerifyConsistency(old, newer Checkpoint, p [][]byte) error {
	switch {
	case old.Origin != newer.Origin:
		return fmt.Errorf("checkpoints of two logs (%q, %q)", old.Origin, newer.Origin)
	case old.Size > newer.Size:
		return fmt.Errorf("the later checkpoint (size %d) is smaller than the earlier (size %d)", newer.Size, old.Size)
	case old.Size == newer.Size:
		if !bytes.Equal(old.Root, newer.Root) || len(p) != 0 {
			return fmt.Errorf("two checkpoints of size %d with different roots (forked log)", old.Size)
		}
		return nil
	}
	if err := proof.VerifyConsistency(hasher, old.Size, newer.Size, p, old.Root, newer.Root); err != nil {
		return fmt.Errorf("consistency proof from size %d to %d does not verify: %w", old.Size, newer.Size, err)
	}
	return nil
}
