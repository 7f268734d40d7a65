-- Vigil watching itself. The engine also raises VigilRuleFailing for every quarantined rule, without a file.
-- Tests: tests/vigil.test.yaml.
local vigil = require "vigil"

vigil.group { name = "vigil", every = "30s" }

-- A collector whose runs keep failing (or timing out) for 2 minutes.
vigil.alert "VigilCollectorFailing" {
  query = "vigil_collector_success",
  fire = function(s) return s.value == 0 end,
  pending = "2m",
  summary = "collector {{collector}} is failing",
  description = "Its metrics are missing or stale. `vigil plugins` or the daemon's log says why.",
}

-- A rule whose evaluations failed in the last 5 minutes (before quarantine, which VigilRuleFailing reports).
vigil.alert "VigilRuleErrors" {
  query = function(q) return q.increase("vigil_rule_evaluation_failures_total", "5m") end,
  fire = function(s) return s.value > 0 end,
  summary = "rule {{rule}} failed {{value | fixed(0)}} times in 5 minutes",
  description = "`vigil rules` shows its last error with a traceback.",
}

-- The store refused new series because it holds store.max_series (a churning collector or plugin).
vigil.alert "VigilSeriesLimit" {
  query = function(q) return q.increase("vigil_store_series_refused_total", "5m") end,
  fire = function(s) return s.value > 0 end,
  severity = "critical",
  summary = "the metrics store refused {{value | fixed(0)}} new series in 5 minutes",
  description = "It holds store.max_series series. `vigil_store_series` and the daemon's log name the source; stop it or raise the limit.",
}
