-- The allocator policy: how queued tasks are ordered and where they are placed.
-- Edit and save: the daemon reloads this file within a second; a version that fails to load leaves the
-- last good one in force (`vigil queue` and `vigil rules check` show why). Prove a change offline first:
--   vigil sim --trace ../shared/data/traces/tiresias-60.csv --policy rules/policy.lua
local vigil = require "vigil"

vigil.policy {
  -- immediate: first come, first served · batch: gather submissions for batch_window, place largest first ·
  -- priority: Slurm-style multifactor priority (the weights below), with backfill.
  strategy = "priority",
  -- performance spreads tasks over fast, cool GPUs · cost packs them onto the cheapest · balanced packs memory.
  target   = "balanced",
  weights  = { speed = 0.4, efficiency = 0.4, reliability = 0.2 },
  -- Each factor is in [0,1]; the weights say what a full factor is worth.
  priority = { class = 10000, fair_share = 2000, size = 3000, age = 1000 },
  tasks_per_gpu = 4,
  backfill = true,
  fair_share_half_life = "7d",

  -- The score of placing `task` on `gpu` (higher is better). `gpu.builtin` is the built-in score for the
  -- same weights; here a GPU that logged XID or uncorrected ECC errors in the last hour is avoided outright.
  score = function(task, gpu, w)
    if gpu.errors > 0 then return gpu.builtin - 10 end
    return gpu.builtin
  end,
}
