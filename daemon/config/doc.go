// SPDX-License-Identifier: Apache-2.0

// Package config is fieldgated's configuration: the schema, loading through
// viper (one YAML file plus a few FIELDGATE_* environment overrides), strict
// decoding (an unknown or misspelt key is an error naming the key and its
// line), and complete validation before anything starts. It is the only
// importer of viper; every other package takes a plain Config struct.
package config
