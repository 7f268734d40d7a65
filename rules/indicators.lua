-- Performance indicators (the guide's speed Low/Medium/High, efficiency Poor/Good/Excellent and status
-- Active/Queued/Complete), for each task and for the host. `vigil report status` and `vigil report task`
-- show them. A function returns a number, which the thresholds turn into a level (a value at or above
-- thresholds[i] reaches levels[i+1]), a level's name, or nil for "not known yet". Tune the thresholds here;
-- the daemon reloads this file within a second. Tests: Tests/VigilRulesTests/RecommendationTests.swift.
local vigil = require "vigil"

-- How fast work runs: 1 is the usual pace.
-- A finished task against the median run time of similar tasks (same kind, last 20 that succeeded); one
-- still running and already past that median, the same way. Without history, from how busy it keeps its
-- GPUs: 40 % busy reads as 0.8, 80 % busy as 1.1.
vigil.indicator "speed" {
  levels = { "Low", "Medium", "High" },
  thresholds = { 0.8, 1.1 },
  task = function(t)
    if t.similar_median_seconds and t.run_seconds > 0 then
      if t.state == "succeeded" or (t.state == "running" and t.run_seconds > t.similar_median_seconds) then
        return t.similar_median_seconds / t.run_seconds
      end
    end
    if t.mean_utilization then return 0.5 + 0.75 * t.mean_utilization end
    return nil
  end,
  -- The host: the mean utilisation of its GPUs over 5 minutes, on the same scale.
  host = function(h)
    local busy = vigil.query.avg(vigil.query.avg_over_time("gpu_utilization_ratio", "5m"))
    if #busy == 0 then return nil end
    return 0.5 + 0.75 * busy[1].value
  end,
}

-- What is made of what is held (0–1): a task's mean GPU utilisation, times the share of its declared GPU
-- memory it actually used at peak. The host: the share of its GPUs' time spent busy.
vigil.indicator "efficiency" {
  levels = { "Poor", "Good", "Excellent" },
  thresholds = { 0.4, 0.75 },
  task = function(t)
    if not t.mean_utilization then return nil end
    local memory = 1
    if t.gpu_memory_declared > 0 and t.gpu_memory_peak then
      memory = math.min(1, t.gpu_memory_peak / t.gpu_memory_declared)
    end
    return t.mean_utilization * memory
  end,
  host = function(h)
    if h.gpus == 0 then return nil end
    local busy = vigil.query.avg(vigil.query.avg_over_time("gpu_utilization_ratio", "1h"))
    if #busy == 0 then return nil end
    return busy[1].value
  end,
}

vigil.indicator "status" {
  levels = { "Complete", "Queued", "Active" },
  task = function(t)
    if t.state == "queued" then return "Queued" end
    if t.state == "running" or t.state == "paused" or t.state == "starting" then return "Active" end
    return "Complete"
  end,
  host = function(h)
    if h.running + h.paused > 0 then return "Active" end
    if h.queued > 0 then return "Queued" end
    return "Complete"
  end,
}
