-- Recommendations: how to spend less and run faster. `vigil recommendations` lists what holds now, most
-- valuable first; `vigil report status` shows the top five. Edit and save: the daemon reloads this file
-- within a second. Each one names what it concerns (about) and, where a figure can be put on it, the
-- saving per month (money in costs.currency, and GPU-hours). Tests: Tests/VigilRulesTests/RecommendationTests.swift.
local vigil = require "vigil"

local HOURS_PER_MONTH = 730
local WEEKS_PER_MONTH = HOURS_PER_MONTH / (7 * 24)

-- The GPUs by index, with their price per hour and the tasks on them.
local function gpus_by_index()
  local out = {}
  for _, g in ipairs(vigil.history.gpus()) do out[g.gpu] = g end
  return out
end

-- Tasks the allocator kept that `keep` accepts, in groups by owner and kind: each group has `owner`, `kind`,
-- `tasks` (how many), their summed `cost`, `gpu_hours` and `run_seconds`, and `list`, the tasks themselves.
local function by_owner_and_kind(options, keep)
  local groups = {}
  for _, t in ipairs(vigil.history.tasks(options)) do
    if keep(t) then
      local key = t.owner .. "\0" .. t.kind
      local g = groups[key]
      if not g then
        g = { owner = t.owner, kind = t.kind, tasks = 0, cost = 0, gpu_hours = 0, run_seconds = 0, list = {} }
        groups[key] = g
      end
      g.tasks = g.tasks + 1
      g.cost = g.cost + t.cost
      g.gpu_hours = g.gpu_hours + t.gpu_hours
      g.run_seconds = g.run_seconds + t.run_seconds
      g.list[#g.list + 1] = t
    end
  end
  return groups
end

-- A GPU no task held and nothing used (utilisation never above 5 %) for the last hour: its price is paid
-- whether it works or not.
vigil.recommend "IdleGpu" {
  every = "5m",
  about = "gpu",
  query = function(q)
    local gpus = gpus_by_index()
    local hour_ago = (vigil.now() - 3600) * 1000
    -- Only GPUs watched for the whole hour: samples older than 50 minutes exist.
    local older = {}
    local recent = {}
    for _, s in ipairs(q.count_over_time("gpu_utilization_ratio", "1h")) do older[s.labels.gpu] = s.value end
    for _, s in ipairs(q.count_over_time("gpu_utilization_ratio", "50m")) do recent[s.labels.gpu] = s.value end
    local out = {}
    for _, s in ipairs(q.max_over_time("gpu_utilization_ratio", "1h")) do
      local g = gpus[s.labels.gpu]
      if g and g.tasks == 0 and (g.last_task_ended == nil or g.last_task_ended < hour_ago)
         and (older[s.labels.gpu] or 0) > (recent[s.labels.gpu] or 0) then
        out[#out + 1] = { labels = { gpu = s.labels.gpu, model = s.labels.model }, value = s.value,
                          price = g.price_per_hour, monthly = g.price_per_hour * HOURS_PER_MONTH }
      end
    end
    return out
  end,
  when = function(s) return s.value < 0.05 end,
  saving = function(s) return { money = s.monthly, gpu_hours = HOURS_PER_MONTH } end,
  title = "GPU {{gpu}} ({{model}}) idle for the last hour",
  advice = "No task held it and utilisation stayed at or under {{value | percent}}. Give it queued work, lend it to another team, or power it down: idle it still costs {{monthly | fixed(0)}} a month.",
}

-- Tasks that hold GPUs and leave them mostly idle (under 30 % busy over at least an hour of running this
-- week): the idle share of what they cost is paid for nothing. Usually a slow input pipeline, or more GPUs
-- than the code uses.
vigil.recommend "UnderusedGpus" {
  every = "15m",
  about = "owner",
  query = function(q)
    local groups = by_owner_and_kind({ since = "7d" }, function(t)
      return t.gpus > 0 and t.mean_utilization ~= nil and t.run_seconds > 0
    end)
    local out = {}
    for _, g in pairs(groups) do
      local busy = 0
      for _, t in ipairs(g.list) do busy = busy + t.mean_utilization * t.run_seconds end
      out[#out + 1] = { labels = { owner = g.owner, kind = g.kind }, value = busy / g.run_seconds, hours = g.run_seconds / 3600,
                        cost = g.cost, gpu_hours = g.gpu_hours, tasks = g.tasks }
    end
    return out
  end,
  when = function(s) return s.value < 0.3 and s.hours >= 1 end,
  saving = function(s)
    return { money = (1 - s.value) * s.cost * WEEKS_PER_MONTH, gpu_hours = (1 - s.value) * s.gpu_hours * WEEKS_PER_MONTH }
  end,
  title = "{{owner}}'s {{kind}} tasks keep their GPUs only {{value | percent}} busy",
  advice = "Over {{hours | fixed(1)}} hours of running this week. Feed the GPUs faster (data loading, CPU preprocessing), ask for fewer GPUs, or share one with --gpu-mem.",
}

-- Tasks of one kind that declare far more GPU memory than they ever use: the declaration holds the rest of
-- the GPU back from other tasks, and the cost is charged on the declared share.
vigil.recommend "OversizedMemoryRequest" {
  every = "15m",
  about = "owner",
  query = function(q)
    local groups = by_owner_and_kind({ since = "7d", state = "succeeded" }, function(t)
      return t.gpu_memory_declared > 0 and t.gpu_memory_peak ~= nil
    end)
    local GiB = 1024 * 1024 * 1024
    local out = {}
    for _, g in pairs(groups) do
      local declared, peak = 0, 0
      for _, t in ipairs(g.list) do
        declared = math.max(declared, t.gpu_memory_declared)
        peak = math.max(peak, t.gpu_memory_peak)
      end
      -- Suggest the peak plus a quarter, rounded up to a whole GiB.
      local suggested = math.ceil(peak * 1.25 / GiB) * GiB
      out[#out + 1] = { labels = { owner = g.owner, kind = g.kind }, value = declared / math.max(peak, 1),
                        declared = declared, peak = peak, suggested = suggested, tasks = g.tasks,
                        freed = math.max(0, 1 - suggested / declared), cost = g.cost, gpu_hours = g.gpu_hours }
    end
    return out
  end,
  -- Declared at least twice the peak, over at least 3 runs.
  when = function(s) return s.value >= 2 and s.tasks >= 3 and s.suggested < s.declared end,
  saving = function(s)
    return { money = s.cost * s.freed * WEEKS_PER_MONTH, gpu_hours = s.gpu_hours * s.freed * WEEKS_PER_MONTH }
  end,
  title = "{{owner}}'s {{kind}} tasks declare {{declared | bytes}} of GPU memory but peak at {{peak | bytes}}",
  advice = "Submit them with --gpu-mem {{suggested | bytes}}: other tasks can share the rest of the GPU, and the declared share is what is charged.",
}

-- Work that ran at peak rates and could wait for the off-peak window: not urgent, not already marked --off-peak.
vigil.recommend "RunOffPeak" {
  every = "15m",
  about = "owner",
  query = function(q)
    local pricing = vigil.history.pricing()
    if not pricing or not pricing.has_off_peak or pricing.off_peak_factor >= 1 then return {} end
    local groups = by_owner_and_kind({ since = "7d", state = "finished" }, function(t)
      return not t.off_peak and t.priority <= 50 and t.cost > 0
    end)
    local out = {}
    for _, g in pairs(groups) do
      local peak_cost = 0
      for _, t in ipairs(g.list) do peak_cost = peak_cost + (t.cost - t.off_peak_cost) end
      -- Off-peak, the same work costs `off_peak_factor` times as much.
      out[#out + 1] = { labels = { owner = g.owner, kind = g.kind }, tasks = g.tasks, peak_cost = peak_cost,
                        value = peak_cost * (1 - pricing.off_peak_factor) * WEEKS_PER_MONTH,
                        factor = pricing.off_peak_factor }
    end
    return out
  end,
  -- Worth saying from 1 (currency unit) a month.
  when = function(s) return s.value >= 1 end,
  saving = function(s) return s.value end,
  title = "{{owner}}'s {{kind}} tasks could run off-peak",
  advice = "{{tasks}} normal- or low-priority tasks cost {{peak_cost | fixed(2)}} at peak rates this week. Submit them with --off-peak; they start in the next off-peak window at {{factor | percent}} of the price.",
}

-- GPUs whose clocks were held down by heat or power for much of the last 15 minutes: work on them runs slower.
vigil.recommend "GpuThrottled" {
  every = "5m",
  about = "gpu",
  query = function(q)
    local gpus = gpus_by_index()
    local throttled = {}
    for _, s in ipairs(q.avg_over_time('gpu_clocks_event_active{reason=~"sw_thermal_slowdown|hw_thermal_slowdown|hw_slowdown|sw_power_cap|hw_power_brake_slowdown"}', "15m")) do
      throttled[s.labels.gpu] = math.max(throttled[s.labels.gpu] or 0, s.value)
    end
    local max_clock = {}
    for _, s in ipairs(q.last('gpu_clock_max_hertz{clock="sm"}')) do max_clock[s.labels.gpu] = s.value end
    local out = {}
    for _, s in ipairs(q.avg_over_time('gpu_clock_hertz{clock="sm"}', "15m")) do
      local top = max_clock[s.labels.gpu]
      local share = throttled[s.labels.gpu] or 0
      if top and top > 0 then
        local lost = math.max(0, 1 - s.value / top)
        local g = gpus[s.labels.gpu]
        out[#out + 1] = { labels = { gpu = s.labels.gpu, model = s.labels.model }, value = lost, share = share,
                          price = g and g.price_per_hour or 0 }
      end
    end
    return out
  end,
  -- Throttled over a fifth of the time and running more than 10 % below the top clock.
  when = function(s) return s.share > 0.2 and s.value > 0.1 end,
  saving = function(s)
    return { money = s.value * s.price * HOURS_PER_MONTH, gpu_hours = s.value * HOURS_PER_MONTH }
  end,
  title = "GPU {{gpu}} ({{model}}) throttled: clocks {{value | percent}} below their maximum",
  advice = "Held down by heat or power {{share | percent}} of the last 15 minutes. Check airflow, fans and the power limit (`vigil gpus`); work there runs slower for the same price.",
}

-- Waits that another strategy would have shortened: the last week's GPU tasks replayed through the
-- simulator under each strategy, against the live policy's.
vigil.recommend "QueueStrategy" {
  every = "1h",
  query = function(q)
    local current = vigil.history.replay { since = "7d" }
    if not current or current.jobs < 10 then return {} end
    local best
    for _, strategy in ipairs { "priority", "immediate", "batch" } do
      if strategy ~= current.strategy then
        local other = vigil.history.replay { since = "7d", strategy = strategy }
        if other and (not best or other.mean_wait_seconds < best.mean_wait_seconds) then best = other end
      end
    end
    if not best then return {} end
    return { { labels = { strategy = best.strategy }, value = best.mean_wait_seconds / math.max(current.mean_wait_seconds, 1),
               current = current.strategy, current_wait = current.mean_wait_seconds, wait = best.mean_wait_seconds,
               jobs = current.jobs } }
  end,
  -- A quarter shorter, and at least a minute.
  when = function(s) return s.value <= 0.75 and s.current_wait - s.wait >= 60 end,
  title = "strategy = \"{{strategy}}\" would have cut the mean queue wait from {{current_wait | duration}} to {{wait | duration}}",
  advice = "Replaying the last week's {{jobs}} GPU tasks: {{current}} (now) against {{strategy}}. Try it with `vigil sim` and set it in rules/policy.lua.",
}

-- GPUs that reported XID errors or uncorrectable ECC errors in the last day: keep work off them until checked.
vigil.recommend "AvoidFaultyGpu" {
  every = "5m",
  about = "gpu",
  severity = "warning",
  query = function(q)
    local errors = {}
    local models = {}
    for _, s in ipairs(q.increase("gpu_xid_errors_total", "24h")) do
      errors[s.labels.gpu] = (errors[s.labels.gpu] or 0) + s.value
      models[s.labels.gpu] = s.labels.model
    end
    for _, s in ipairs(q.increase('gpu_ecc_errors_total{type="uncorrected"}', "24h")) do
      errors[s.labels.gpu] = (errors[s.labels.gpu] or 0) + s.value
      models[s.labels.gpu] = models[s.labels.gpu] or s.labels.model
    end
    local out = {}
    for gpu, count in pairs(errors) do out[#out + 1] = { labels = { gpu = gpu, model = models[gpu] }, value = count } end
    return out
  end,
  when = function(s) return s.value >= 1 end,
  title = "GPU {{gpu}} ({{model}}) had {{value | fixed(0)}} XID or uncorrectable ECC errors in 24 hours",
  advice = "The default policy already scores it down. Drain it for a check (nvidia-smi -q -d ECC,PAGE_RETIREMENT; the kernel log for XIDs) before long jobs land on it.",
}

-- Benchmark results that got worse: the latest run against the median of the five before it (same
-- benchmark, same host, same --quick setting).
vigil.recommend "BenchmarkRegression" {
  every = "15m",
  about = "benchmark",
  severity = "warning",
  query = function(q)
    local series = {}
    for _, r in ipairs(vigil.history.benchmarks { since = "90d" }) do
      local key = r.host .. "\0" .. r.name .. "\0" .. tostring(r.quick)
      series[key] = series[key] or {}
      table.insert(series[key], r)
    end
    local out = {}
    for _, runs in pairs(series) do
      if #runs >= 3 then
        local latest = runs[#runs]
        local before = {}
        for i = math.max(1, #runs - 5), #runs - 1 do before[#before + 1] = runs[i].value end
        table.sort(before)
        local median = #before % 2 == 1 and before[(#before + 1) // 2] or (before[#before // 2] + before[#before // 2 + 1]) / 2
        -- How much worse, as a share of the median (positive: worse).
        local worse = latest.higher_is_better and (median - latest.value) / median or (latest.value - median) / median
        out[#out + 1] = { labels = { benchmark = latest.name, host = latest.host }, value = worse,
                          latest = latest.value, median = median, unit = latest.unit }
      end
    end
    return out
  end,
  when = function(s) return s.value > 0.1 end,
  title = "benchmark {{benchmark}} regressed {{value | percent}}: {{latest | fixed(3)}} {{unit}} against a median of {{median | fixed(3)}}",
  advice = "Something on {{host}} got slower: compare `vigil bench history`, and look for throttling, a driver change or a noisy neighbour.",
}
