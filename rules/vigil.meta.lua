---@meta
-- LuaCATS declarations of the `vigil` module for editors (lua-language-server). Documentation: README.md.

---@class VigilElement
---@field name string? metric name (absent after functions that drop it)
---@field labels table<string, string>
---@field value number

---@alias VigilVector VigilElement[]
---@alias VigilRange string|number a duration ("5m") or seconds
---@alias VigilGrouping { by: string[]? , without: string[]? }

---@class vigil
local vigil = {}

---Evaluation time in seconds since the epoch.
---@return number
function vigil.now() end

---@class vigil.query
vigil.query = {}

---@param selector string
---@return VigilVector
function vigil.query.last(selector) end
---@param selector string
---@return number?
function vigil.query.value(selector) end
---@param selector string
---@return table<string, string>[]
function vigil.query.series(selector) end
---@return string[]
function vigil.query.metric_names() end
---@param vector VigilVector
---@return number?
function vigil.query.scalar(vector) end

---Series not seen for `after` (but within `forget`, default the store's retention), with all their labels,
---their last value, and `last_seen` (seconds since the epoch).
---@param selector string
---@param after VigilRange
---@param forget VigilRange?
---@return VigilElement[]
function vigil.query.vanished(selector, after, forget) end

---@param selector string
---@param range VigilRange
---@return VigilVector
function vigil.query.avg_over_time(selector, range) end
---@return VigilVector
function vigil.query.min_over_time(selector, range) end
---@return VigilVector
function vigil.query.max_over_time(selector, range) end
---@return VigilVector
function vigil.query.sum_over_time(selector, range) end
---@return VigilVector
function vigil.query.count_over_time(selector, range) end
---@return VigilVector
function vigil.query.stddev_over_time(selector, range) end
---@return VigilVector
function vigil.query.stdvar_over_time(selector, range) end
---@return VigilVector
function vigil.query.last_over_time(selector, range) end
---@return VigilVector
function vigil.query.present_over_time(selector, range) end
---@return VigilVector
function vigil.query.rate(selector, range) end
---@return VigilVector
function vigil.query.increase(selector, range) end
---@return VigilVector
function vigil.query.delta(selector, range) end
---@return VigilVector
function vigil.query.deriv(selector, range) end
---@return VigilVector
function vigil.query.changes(selector, range) end
---@return VigilVector
function vigil.query.resets(selector, range) end
---@param q number
---@param selector string
---@param range VigilRange
---@return VigilVector
function vigil.query.quantile_over_time(q, selector, range) end
---@param selector string
---@param range VigilRange
---@param seconds number
---@return VigilVector
function vigil.query.predict_linear(selector, range, seconds) end

---@param vector VigilVector
---@param options VigilGrouping?
---@return VigilVector
function vigil.query.sum(vector, options) end
---@return VigilVector
function vigil.query.avg(vector, options) end
---@return VigilVector
function vigil.query.min(vector, options) end
---@return VigilVector
function vigil.query.max(vector, options) end
---@return VigilVector
function vigil.query.count(vector, options) end
---@return VigilVector
function vigil.query.stddev(vector, options) end
---@return VigilVector
function vigil.query.stdvar(vector, options) end
---@param k integer
---@param vector VigilVector
---@param options VigilGrouping?
---@return VigilVector
function vigil.query.topk(k, vector, options) end
---@return VigilVector
function vigil.query.bottomk(k, vector, options) end

---@class vigil.format
vigil.format = {}

---`1536` → `"1.5 KiB"`.
---@param value number
---@return string
function vigil.format.bytes(value) end
---A ratio as a percentage: `0.953` → `"95.3%"`.
---@param value number
---@return string
function vigil.format.percent(value) end
---Seconds as `"1h30m"`.
---@param value number
---@return string
function vigil.format.duration(value) end
---SI prefixes: `1234567` → `"1.23M"`.
---@param value number
---@return string
function vigil.format.si(value) end
---As Prometheus prints numbers: `91`, `0.25`.
---@param value number
---@return string
function vigil.format.number(value) end

---@alias VigilLevel "info"|"warning"|"critical"
---@alias VigilCondition fun(s: VigilElement): boolean

---@class VigilAlertSpec
---@field query string|fun(q: vigil.query): VigilVector|number|nil selector, or a function returning a vector, a number or nil
---@field fire VigilCondition|table<VigilLevel, VigilCondition>? default: every element the query returns fires
---@field clear VigilCondition|table<VigilLevel, VigilCondition>? hysteresis: firing until this holds
---@field every VigilRange? evaluation interval (default: the group's, else 15s)
---@field pending VigilRange? how long fire must hold before firing (Prometheus' `for`)
---@field keep VigilRange? how long to keep firing after the condition stops (`keep_firing_for`)
---@field severity string? default "warning"; with fire as a table, the level names it
---@field labels table<string, string>? added to every instance (templates allowed)
---@field summary string? template
---@field description string? template
---@field annotations table<string, string>? more templates
---@field flapping boolean|{ low: number?, high: number?, history: integer? }?
---@field no_data "keep"|"resolve"|"fire"? when the query returns nothing (default "resolve")
---@field on_error "keep"|"resolve"|"fire"? when the evaluation fails (default "keep")

---Declares an alert rule: `vigil.alert "Name" { … }`.
---@param name string
---@return fun(spec: VigilAlertSpec)
function vigil.alert(name) end

---Sets the group of the rules declared after it in this file: its name and interval.
---@param spec { name: string?, every: VigilRange? }
function vigil.group(spec) end

---A task as the policy's score function sees it.
---@class VigilPolicyTask
---@field id integer
---@field owner string
---@field gpus integer
---@field gpu_memory integer bytes per GPU; 0 = whole GPUs
---@field priority integer 0–100
---@field expected_seconds number

---A GPU as the policy's score function sees it (live figures from the store).
---@class VigilPolicyGpu
---@field index integer
---@field uuid string
---@field model string
---@field memory_total integer bytes
---@field memory_free integer bytes the ledger can still promise
---@field tasks integer tasks holding it
---@field utilization number 0–1
---@field temperature number °C
---@field clock_sm number MHz
---@field clock_sm_max number MHz
---@field power number W
---@field errors number XID and uncorrected ECC errors in the last hour
---@field price_per_hour number
---@field builtin number the built-in score of this placement

---@class VigilPolicySpec
---@field strategy "immediate"|"batch"|"priority"?
---@field target "performance"|"cost"|"balanced"?
---@field weights { speed: number?, efficiency: number?, reliability: number? }?
---@field priority { class: number?, age: number?, fair_share: number?, size: number? }?
---@field tasks_per_gpu integer?
---@field batch_window VigilRange?
---@field backfill boolean?
---@field fair_share_half_life VigilRange?
---@field max_age VigilRange?
---@field default_duration VigilRange?
---@field size_scale number?
---@field score_window integer?
---@field score fun(task: VigilPolicyTask, gpu: VigilPolicyGpu, w: { speed: number, efficiency: number, reliability: number, target: string }): number?

---The allocator policy (only in the policy file, `rules/policy.lua`).
---@param spec VigilPolicySpec
function vigil.policy(spec) end

---@class VigilRecommendSpec
---@field query string|fun(q: vigil.query): VigilVector selector, or a function returning the candidates
---@field when fun(s: VigilElement): boolean? true when the candidate deserves the recommendation
---@field title string template: one line
---@field advice string? template: what to do
---@field saving (fun(s: VigilElement): number|{ money: number?, gpu_hours: number? }|nil)? money (or GPU-hours) per month
---@field about string? the label naming what it concerns (gpu, task, owner …)
---@field severity "info"|"warning"|"critical"? default info
---@field every VigilRange? evaluation interval

---A recommendation generator: `vigil.recommend "Name" { … }`.
---@param name string
---@return fun(spec: VigilRecommendSpec)
function vigil.recommend(name) end

---@class VigilIndicatorSpec
---@field levels string[] level names, lowest first
---@field thresholds number[]? ascending, one fewer than levels
---@field task (fun(t: VigilTaskFacts): number|string|nil)?
---@field host (fun(h: { running: integer, paused: integer, queued: integer, finished: integer, gpus: integer, busy_gpus: integer }): number|string|nil)?

---A performance indicator: `vigil.indicator "name" { … }`.
---@param name string
---@return fun(spec: VigilIndicatorSpec)
function vigil.indicator(name) end

---@class VigilTaskFacts
---@field id integer
---@field name string
---@field owner string
---@field kind string
---@field state string
---@field priority integer
---@field off_peak boolean
---@field gpus integer
---@field gpu_indices integer[]
---@field gpu_model string?
---@field gpu_memory_declared integer bytes per GPU, 0 for whole GPUs
---@field gpu_memory_peak integer? bytes, the most its processes used on one GPU
---@field mean_utilization number? 0–1
---@field submitted integer ms
---@field started integer? ms
---@field ended integer? ms
---@field run_seconds number
---@field wait_seconds number
---@field gpu_hours number
---@field cost number
---@field off_peak_cost number
---@field time_limit_seconds number?
---@field similar_median_seconds number?
---@field similar_count integer
---@field estimated_end integer? ms

---@class vigil.history
vigil.history = {}

---@param options { since: VigilRange?, state: string?, owner: string?, kind: string?, limit: integer? }?
---@return VigilTaskFacts[]
function vigil.history.tasks(options) end
---@return { gpu: string, uuid: string, model: string, price_per_hour: number, memory_total: integer, tasks: integer, last_task_ended: integer? }[]
function vigil.history.gpus() end
---@return { currency: string, default_gpu_hour: number, kwh: number, off_peak_factor: number, has_off_peak: boolean }?
function vigil.history.pricing() end
---@param options { since: VigilRange?, name: string? }?
---@return { run: string, time: integer, host: string, quick: boolean, name: string, suite: string, value: number, unit: string, higher_is_better: boolean, score: number }[]
function vigil.history.benchmarks(options) end
---@param options { since: VigilRange?, strategy: "immediate"|"batch"|"priority"?, backfill: boolean? }?
---@return { strategy: string, backfill: boolean, jobs: integer, mean_jct_seconds: number, mean_wait_seconds: number, p95_wait_seconds: number, utilization: number, makespan_seconds: number }?
function vigil.history.replay(options) end

---@class vigil.prometheus
vigil.prometheus = {}

---PromQL against a configured query source (query_sources:), as an instant query at the evaluation time.
---@param source string
---@param expr string
---@return VigilVector|number
function vigil.prometheus.query(source, expr) end
---@return string[]
function vigil.prometheus.sources() end

return vigil
