-- A module users keep next to their rules.
local M = {}
function M.double(x) return 2 * x end
return M
