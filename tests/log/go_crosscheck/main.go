// Command go_crosscheck is the independent implementation that tests/log/test_go_crosscheck.py
// compares custody.log against: golang.org/x/mod/sumdb/tlog (RFC 6962 trees and proofs)
// and golang.org/x/mod/sumdb/note (signed notes). It reads one JSON request on stdin and
// writes one JSON answer on stdout. Build needs only the Go toolchain and golang.org/x/mod
// (GOPATH mode, no network); the Python test skips when either is missing.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusionCheck struct {
	Index    int64    `json:"index"`
	Size     int64    `json:"size"`
	LeafHash string   `json:"leaf_hash"`
	Root     string   `json:"root"`
	Proof    []string `json:"proof"`
}

type consistencyCheck struct {
	Old     int64    `json:"old"`
	New     int64    `json:"new"`
	OldRoot string   `json:"old_root"`
	NewRoot string   `json:"new_root"`
	Proof   []string `json:"proof"`
}

type noteCheck struct {
	Note  string   `json:"note"`
	VKeys []string `json:"vkeys"`
	// Raw Ed25519 public keys (standard base64) that verify as Name: the vkeys are made here,
	// by note.NewEd25519VerifierKey, from what an export's keys.json lists
	RawKeys []string `json:"raw_keys"`
	Name    string   `json:"name"`
}

type request struct {
	Leaves           []string           `json:"leaves"` // hex of each leaf's data
	Roots            []int64            `json:"roots"`
	Inclusion        [][2]int64         `json:"inclusion"`
	Consistency      [][2]int64         `json:"consistency"`
	CheckInclusion   []inclusionCheck   `json:"check_inclusion"`
	CheckConsistency []consistencyCheck `json:"check_consistency"`
	OpenNotes        []noteCheck        `json:"open_notes"`
	SignName         string             `json:"sign_name"`
	SignText         string             `json:"sign_text"`
}

type openedNote struct {
	Err  string      `json:"err"`
	Text string      `json:"text"`
	Sigs [][2]string `json:"sigs"`
}

type answer struct {
	Roots            map[int64]string `json:"roots"`
	Inclusion        [][]string       `json:"inclusion"`
	Consistency      [][]string       `json:"consistency"`
	CheckInclusion   []string         `json:"check_inclusion"`
	CheckConsistency []string         `json:"check_consistency"`
	OpenNotes        []openedNote     `json:"open_notes"`
	SignedVKey       string           `json:"signed_vkey"`
	SignedNote       string           `json:"signed_note"`
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	must(err)
	return b
}

func hash(s string) tlog.Hash {
	var h tlog.Hash
	copy(h[:], unhex(s))
	return h
}

func hexes(hs []tlog.Hash) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, hex.EncodeToString(h[:]))
	}
	return out
}

func hashes(ss []string) []tlog.Hash {
	out := []tlog.Hash{}
	for _, s := range ss {
		out = append(out, hash(s))
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func main() {
	var req request
	must(json.NewDecoder(os.Stdin).Decode(&req))

	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	for n, leaf := range req.Leaves {
		hs, err := tlog.StoredHashes(int64(n), unhex(leaf), reader)
		must(err)
		stored = append(stored, hs...)
	}

	ans := answer{Roots: map[int64]string{}}
	for _, size := range req.Roots {
		h, err := tlog.TreeHash(size, reader)
		must(err)
		ans.Roots[size] = hex.EncodeToString(h[:])
	}
	for _, q := range req.Inclusion {
		p, err := tlog.ProveRecord(q[1], q[0], reader)
		must(err)
		ans.Inclusion = append(ans.Inclusion, hexes(p))
	}
	for _, q := range req.Consistency {
		p, err := tlog.ProveTree(q[1], q[0], reader)
		must(err)
		ans.Consistency = append(ans.Consistency, hexes(p))
	}
	for _, c := range req.CheckInclusion {
		err := tlog.CheckRecord(hashes(c.Proof), c.Size, hash(c.Root), c.Index, hash(c.LeafHash))
		ans.CheckInclusion = append(ans.CheckInclusion, errText(err))
	}
	for _, c := range req.CheckConsistency {
		err := tlog.CheckTree(hashes(c.Proof), c.New, hash(c.NewRoot), c.Old, hash(c.OldRoot))
		ans.CheckConsistency = append(ans.CheckConsistency, errText(err))
	}
	for _, c := range req.OpenNotes {
		var vs []note.Verifier
		vkeys := append([]string{}, c.VKeys...)
		for _, raw := range c.RawKeys {
			key, err := base64.StdEncoding.DecodeString(raw)
			must(err)
			vkey, err := note.NewEd25519VerifierKey(c.Name, ed25519.PublicKey(key))
			must(err)
			vkeys = append(vkeys, vkey)
		}
		for _, k := range vkeys {
			v, err := note.NewVerifier(k)
			must(err)
			vs = append(vs, v)
		}
		n, err := note.Open([]byte(c.Note), note.VerifierList(vs...))
		got := openedNote{Err: errText(err)}
		if err == nil {
			got.Text = n.Text
			for _, s := range n.Sigs {
				got.Sigs = append(got.Sigs, [2]string{s.Name, hex.EncodeToString([]byte{byte(s.Hash >> 24), byte(s.Hash >> 16), byte(s.Hash >> 8), byte(s.Hash)})})
			}
		}
		ans.OpenNotes = append(ans.OpenNotes, got)
	}
	if req.SignName != "" {
		skey, vkey, err := note.GenerateKey(rand.Reader, req.SignName)
		must(err)
		signer, err := note.NewSigner(skey)
		must(err)
		msg, err := note.Sign(&note.Note{Text: req.SignText}, signer)
		must(err)
		ans.SignedVKey, ans.SignedNote = vkey, string(msg)
	}
	must(json.NewEncoder(os.Stdout).Encode(ans))
}
