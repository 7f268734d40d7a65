-- Host rules: CPU, memory, disks and pressure stalls, from node_exporter-named metrics.
-- Each has a test in tests/host.test.yaml (`vigil rules test rules/tests/*.yaml`).
local vigil = require "vigil"

vigil.group { name = "host", every = "30s" }

-- CPU busy (1 - idle share, averaged over CPUs) above 90 % for 10 minutes; clears below 80 %.
vigil.alert "HostCpuSaturated" {
  query = function(q)
    local out = {}
    for _, s in ipairs(q.avg(q.rate('node_cpu_seconds_total{mode="idle"}', "5m"), { by = {} })) do
      out[#out + 1] = { labels = {}, value = 1 - s.value }
    end
    return out
  end,
  fire = function(s) return s.value > 0.9 end,
  clear = function(s) return s.value < 0.8 end,
  pending = "10m",
  severity = "warning",
  summary = "CPU {{value | percent}} busy for 10 minutes",
  description = "Every core is nearly always busy: new work queues up. Look at `vigil top` or the tasks on this host.",
}

-- Less than 10 % of memory available for 5 minutes (critical below 5 %).
vigil.alert "HostMemoryLow" {
  query = function(q)
    local available, total = q.value("node_memory_MemAvailable_bytes"), q.value("node_memory_MemTotal_bytes")
    if not available or not total or total == 0 then return nil end
    return available / total
  end,
  fire = { warning = function(s) return s.value < 0.10 end, critical = function(s) return s.value < 0.05 end },
  clear = { warning = function(s) return s.value > 0.15 end, critical = function(s) return s.value > 0.08 end },
  pending = "5m",
  summary = "only {{value | percent}} of memory available",
  description = "The kernel will soon reclaim hard or kill processes (OOM).",
}

-- A filesystem under 40 % free whose free space, extrapolated over the last 6 hours, runs out within a day.
vigil.alert "HostDiskFilling" {
  every = "1m",
  query = function(q)
    local selector = 'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"}'
    local sizes = {}
    for _, s in ipairs(q.last('node_filesystem_size_bytes{fstype!~"tmpfs|ramfs"}')) do
      sizes[s.labels.mountpoint] = s.value
    end
    local predicted = {}
    for _, s in ipairs(q.predict_linear(selector, "6h", 24 * 3600)) do predicted[s.labels.mountpoint] = s.value end
    local out = {}
    for _, s in ipairs(q.last(selector)) do
      local size, future = sizes[s.labels.mountpoint], predicted[s.labels.mountpoint]
      if size and size > 0 and future then
        out[#out + 1] = { labels = { mountpoint = s.labels.mountpoint, device = s.labels.device },
                          value = s.value / size, predicted = future }
      end
    end
    return out
  end,
  fire = function(s) return s.value < 0.4 and s.predicted < 0 end,
  pending = "30m",
  summary = "{{mountpoint}} is {{value | percent}} free and fills within 24 hours at this rate",
}

-- Some process could make no progress at all (memory or I/O "full" pressure) more than 10 % of the time.
vigil.alert "HostPressureStall" {
  every = "1m",
  query = function(q)
    local out = {}
    for resource, metric in pairs({ memory = "node_pressure_memory_stalled_seconds_total",
                                    io = "node_pressure_io_stalled_seconds_total" }) do
      for _, s in ipairs(q.rate(metric, "5m")) do out[#out + 1] = { labels = { resource = resource }, value = s.value } end
    end
    return out
  end,
  fire = function(s) return s.value > 0.10 end,
  clear = function(s) return s.value < 0.05 end,
  pending = "5m",
  summary = "all tasks stalled on {{resource}} {{value | percent}} of the time",
}

-- `vigil bench` found a figure worse than this host's earlier runs (the `bench` collector's metrics).
vigil.alert "HostBenchmarkRegression" {
  every = "5m",
  query = function(q)
    local change = {}
    for _, s in ipairs(q.last("vigil_bench_change_ratio")) do change[s.labels.benchmark] = s.value end
    local out = {}
    for _, s in ipairs(q.last("vigil_bench_regression")) do
      out[#out + 1] = { labels = { benchmark = s.labels.benchmark }, value = change[s.labels.benchmark] or 0,
                        regression = s.value }
    end
    return out
  end,
  fire = function(s) return s.regression == 1 end,
  summary = "benchmark {{benchmark}} changed {{value | percent}} against this host's earlier runs: a regression",
  description = "`vigil bench history --name {{benchmark}}` shows the runs; compare with `vigil bench compare`.",
}
