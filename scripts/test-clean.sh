#!/usr/bin/env bash
# `npm run test:clean`: stops and deletes the test rig's own PostgreSQL cluster and its state.
# Any other PostgreSQL, TEST_DATABASE_URL's server included, is left alone.
exec bash "$(dirname "$0")/test-postgres.sh" --clean
