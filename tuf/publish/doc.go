// SPDX-License-Identifier: Apache-2.0

// Package publish builds and signs fieldgate TUF repositories: the library
// behind fieldgate-repo and the test fixtures of tuftest.
//
// A repository directory holds:
//
//	DIR/fieldgate-repo.json          options (expiries, hashes, key type, root key directory)
//	DIR/keys/<role>/<keyid>.pem      private keys (encrypted PKCS #8 PEM, mode 0600; plaintext only
//	                                 with KeyAccess.InsecurePlaintextKeys) and <keyid>.pub, the
//	                                 public key; root keys may live in a separate directory
//	                                 (Options.RootKeysDir), e.g. offline media, or be held by
//	                                 their holders alone (Options.RootPublicKeys)
//	DIR/keys/retired/                keys replaced by a rotation, with Options.KeepRetired
//	                                 (otherwise they are removed)
//	DIR/keys/<role>/<keyid>.pem      keys of a delegated role (or the directory given to Delegate)
//	DIR/staged/targets.json          unsigned working copy of the targets role (add/remove, delegations)
//	DIR/staged/<role>.json           unsigned working copy of a delegated role
//	DIR/staged/signing/<role>.json   next version of root, targets or a delegated role with the
//	                                 signatures gathered so far (sign.go), published by Commit
//	                                 once its thresholds are met
//	DIR/signing-log.jsonl            the signing log: one JSON line per signing event (log.go)
//	DIR/repository/metadata/         what clients read: every N.root.json (kept forever) and
//	                                 root.json (latest), V.targets.json, V.<role>.json for
//	                                 delegated roles, V.snapshot.json, timestamp.json
//	DIR/repository/targets/          target files, each stored under every hash it lists as
//	                                 dir/HEX.name (consistent snapshots)
//	DIR/bundles/V.timestamp.json     the timestamp signed for an offline bundle with its own
//	                                 expiry (ExportOptions.Expires), version V; the repository's
//	                                 timestamp.json moved on to V+1
//
// Delegated roles (Delegate) are one level below the top-level targets role,
// each trusted for path patterns and signed with its own keys. Export writes
// an offline bundle: the published metadata and selected targets in the same
// layout, plus an informational bundle.json; ExportWith can give the bundle
// its own expiry, longer than the repository's timestamp.
//
// Serve DIR/repository (Repo.Handler does, with 404 for anything missing);
// clients use …/metadata and …/targets as base URLs and 1.root.json as their
// shipped trusted root, checked against its fingerprint (RootFingerprints).
//
// A Repo is not safe for concurrent use, and two processes must not modify
// the same directory at once.
package publish
