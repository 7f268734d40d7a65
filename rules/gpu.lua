-- GPU rules, from the nvml collector's metrics. Tests: tests/gpu.test.yaml.
local vigil = require "vigil"

vigil.group { name = "gpu", every = "15s" }

-- Hot: warning above 85 °C until back under 80 °C; critical above 92 °C until under 88 °C.
vigil.alert "GpuTooHot" {
  query = "gpu_temperature_celsius",
  fire  = { warning = function(s) return s.value > 85 end, critical = function(s) return s.value > 92 end },
  clear = { warning = function(s) return s.value < 80 end, critical = function(s) return s.value < 88 end },
  pending = "1m",
  summary = "GPU {{gpu}} ({{model}}) at {{value}} °C",
  description = "Check the fans and airflow; the GPU will throttle its clocks to cool down.",
}

-- Memory in use above 95 % of the board's for 5 minutes: the next allocation may fail.
vigil.alert "GpuMemoryNearlyFull" {
  query = function(q)
    local totals = {}
    for _, s in ipairs(q.last("gpu_memory_total_bytes")) do totals[s.labels.uuid] = s.value end
    local out = {}
    for _, s in ipairs(q.last("gpu_memory_used_bytes")) do
      local total = totals[s.labels.uuid]
      if total and total > 0 then
        out[#out + 1] = { labels = { gpu = s.labels.gpu, uuid = s.labels.uuid, model = s.labels.model },
                          value = s.value / total, used = s.value }
      end
    end
    return out
  end,
  fire = function(s) return s.value > 0.95 end,
  clear = function(s) return s.value < 0.90 end,
  pending = "5m",
  summary = "GPU {{gpu}} memory {{value | percent}} used",
}

-- XIDs in the last 10 minutes. Critical for the ones that mean lost data or a lost GPU.
local critical_xids = { ["48"] = true, ["63"] = true, ["64"] = true, ["74"] = true, ["79"] = true,
                        ["92"] = true, ["94"] = true, ["95"] = true }
vigil.alert "GpuXidErrors" {
  query = function(q)
    local last = {}
    for _, s in ipairs(q.last("gpu_last_xid")) do last[s.labels.uuid] = string.format("%d", s.value) end
    local out = {}
    for _, s in ipairs(q.increase("gpu_xid_events_total", "10m")) do
      out[#out + 1] = { labels = { gpu = s.labels.gpu, uuid = s.labels.uuid, xid = last[s.labels.uuid] or "" },
                        value = s.value }
    end
    return out
  end,
  fire = {
    warning = function(s) return s.value > 0 end,
    critical = function(s) return s.value > 0 and critical_xids[s.labels.xid] == true end,
  },
  summary = "GPU {{gpu}} reported XID errors in the last 10 minutes (last XID {{xid}})",
  description = "See NVIDIA's XID catalogue for XID {{xid}}; critical ones need the GPU drained and reset.",
}

-- A GPU NVML reports as lost, or that stopped being reported at all, keeping all its labels.
vigil.alert "GpuLost" {
  query = function(q)
    local out = {}
    for _, s in ipairs(q.last("gpu_up")) do
      if s.value == 0 then out[#out + 1] = s end
    end
    for _, s in ipairs(q.vanished("gpu_up", "2m")) do out[#out + 1] = s end
    return out
  end,
  pending = "30s",
  severity = "critical",
  summary = "GPU {{gpu}} ({{uuid}}) is lost",
  description = "It fell off the bus or needs a reset; tasks on it have failed. Drain it and reset the board.",
}

-- Clocks held down by power or heat (not by idleness or application settings) for 5 minutes.
local throttle_reasons = { sw_power_cap = true, hw_slowdown = true, sw_thermal_slowdown = true,
                           hw_thermal_slowdown = true, hw_power_brake_slowdown = true }
vigil.alert "GpuThrottled" {
  query = function(q)
    local out = {}
    for _, s in ipairs(q.avg_over_time("gpu_clocks_event_active", "5m")) do
      if throttle_reasons[s.labels.reason] then out[#out + 1] = s end
    end
    return out
  end,
  fire = function(s) return s.value > 0.5 end,
  clear = function(s) return s.value < 0.2 end,
  pending = "5m",
  summary = "GPU {{gpu}} throttled by {{reason}} {{value | percent}} of the last 5 minutes",
}

-- Any uncorrected ECC error counted in the last hour.
vigil.alert "GpuEccUncorrected" {
  every = "1m",
  query = function(q) return q.increase('gpu_ecc_errors_total{type="uncorrected",scope="volatile"}', "1h") end,
  fire = function(s) return s.value > 0 end,
  severity = "critical",
  summary = "GPU {{gpu}} had uncorrected ECC errors in the last hour",
  description = "Data on this GPU may be corrupt. Drain it and check `nvidia-smi -q -d ECC,ROW_REMAPPER`.",
}
