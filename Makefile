# telltale: `make run` starts the server; `make test` runs every test.

CARGO ?= cargo
DATABASE ?= ./data/telltale.db
LISTEN ?= 127.0.0.1:8080

.PHONY: run build test lint fmt bench openapi e2e scenarios clean

## Build a release binary and start the server on the embedded SQLite default.
run: build
	@mkdir -p $(dir $(DATABASE))
	./target/release/telltale serve --database-url sqlite://$(DATABASE) --listen $(LISTEN)

build:
	$(CARGO) build --release --locked

## Every test: the pure domain, the event-store contract, read-model folds, and the black-box
## suite (real server, real SQLite, real HTTP peers, real processes, headless Chromium).
test:
	$(CARGO) test --workspace --locked

## Formatting and lints, as CI checks them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## Heartbeats per second acknowledged after commit, and detection latency (deadline → alert
## event, deadline → webhook received, p50 and p99), on this machine.
bench:
	$(CARGO) bench --locked --bench ingest --bench detection

## Rewrite openapi/openapi.json from the code (a test fails while they differ).
openapi:
	$(CARGO) run --quiet --locked -- openapi --output openapi/openapi.json

## The scenario suite (tests/scenarios/*.toml) with its report: false alerts, missed outages,
## duplicate notifications and detection latency per scenario. SCENARIO=name plays a few.
scenarios:
	$(CARGO) test --locked --test scenarios -- --nocapture

## Only the end-to-end tests with real processes and the browser.
e2e:
	$(CARGO) test --locked --test blackbox -- process dashboard

clean:
	$(CARGO) clean
