-- Virtual users of the mixed commerce workload, for wrk:
--
--   wrk -c VUS -d 30s -s bench/mixed.lua http://HOST -- ROLE DATA_DIR
--
-- Every connection is one logged-in virtual user (its bearer token was
-- issued by POST /v1/auth/token when the harness prepared DATA_DIR) doing
-- one kind of transaction over and over, without think time:
--
--   browse    GET a product (Zipf(1.0) popularity over every product),
--             a category page, a search, or the user's own profile;
--   cart      create a cart and put three products in it;
--   checkout  create a cart, put two products in it, check out, and pay
--             the order's total.
--
-- The harness runs one wrk per role at once, with 80 / 15 / 5 % of the
-- users, so each role's latency and rate come from its own generator.
-- A transaction's steps are chained through X-Correlation-Id, which the
-- API echoes, so responses find their transaction whatever connection
-- carried them. DATA_DIR holds tokens.txt, products.txt (most popular
-- first), categories.txt and searches.txt, one value per line.

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

role = "browse"        -- global, so done() can read it
local tokens, products, cdf, categories, searches
local ready = {}      -- requests whose transaction is waiting to go on
local flows = {}      -- correlation id -> transaction in flight
local seq = 0
transactions = 0      -- completed, read by done()
failed = 0            -- abandoned after an error answer

local function lines(path)
  local out = {}
  local file = assert(io.open(path, "r"), "cannot open " .. path)
  for line in file:lines() do
    if #line > 0 then out[#out + 1] = line end
  end
  file:close()
  return out
end

function init(args)
  role = args[1] or "browse"
  local dir = args[2] or "."
  tokens = lines(dir .. "/tokens.txt")
  products = lines(dir .. "/products.txt")
  categories = lines(dir .. "/categories.txt")
  searches = lines(dir .. "/searches.txt")
  -- Zipf(1.0): the k-th most popular product is asked for in proportion
  -- to 1/k. Sampled by bisecting the cumulative weights.
  cdf = {}
  local total = 0
  for k = 1, #products do
    total = total + 1 / k
    cdf[k] = total
  end
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

local function zipf_product()
  local u = math.random() * cdf[#cdf]
  local lo, hi = 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return products[lo]
end

local function send(method, path, flow, body)
  local headers = { ["Authorization"] = "Bearer " .. flow.token }
  if flow.id then
    seq = seq + 1
    local id = "vu-" .. (thread_id or 0) .. "-" .. seq
    flows[id] = flow
    headers["X-Correlation-Id"] = id
  end
  if body then headers["Content-Type"] = "application/json" end
  return wrk.format(method, path, headers, body)
end

local function browse()
  local flow = { token = tokens[math.random(#tokens)] }
  local dice = math.random(100)
  if dice <= 70 then
    return send("GET", "/v1/products/" .. zipf_product(), flow)
  elseif dice <= 85 then
    return send("GET", "/v1/products?limit=20&category=" .. categories[math.random(#categories)], flow)
  elseif dice <= 95 then
    return send("GET", "/v1/products/search?limit=20&q=" .. searches[math.random(#searches)], flow)
  end
  return send("GET", "/v1/customers/me", flow)
end

local function put_item(flow)
  flow.items = flow.items + 1
  return send("PUT", "/v1/carts/" .. flow.cart .. "/items/" .. zipf_product(), flow, '{"quantity":1}')
end

-- The next request of a transaction whose last step answered `body`, or
-- nil when the transaction is complete.
local function next_step(flow, body)
  if flow.step == "create" then
    flow.cart = body:match('"cart_id"%s*:%s*"([^"]+)"')
    flow.step = "items"
    return put_item(flow)
  elseif flow.step == "items" then
    flow.total = body:match('"total"%s*:%s*{%s*"amount"%s*:%s*(%d+)')
    flow.currency = body:match('"total"%s*:%s*{[^}]*"currency"%s*:%s*"(%u+)"')
    local wanted = role == "cart" and 3 or 2
    if flow.items < wanted then return put_item(flow) end
    if role == "cart" then return nil end
    flow.step = "checkout"
    return send("POST", "/v1/carts/" .. flow.cart .. "/checkout", flow,
      '{"shipping_address":"1 Main Street, 10115 Berlin"}')
  elseif flow.step == "checkout" then
    flow.order = body:match('"order_id"%s*:%s*"([^"]+)"')
    flow.step = "pay"
    return send("POST", "/v1/orders/" .. flow.order .. "/payments", flow,
      string.format('{"amount":{"amount":%s,"currency":"%s"},"reference":"pay-%s"}',
        flow.total, flow.currency, flow.order))
  end
  return nil
end

function request()
  local queued = table.remove(ready, 1)
  if queued then return queued end
  if role == "browse" then return browse() end
  local flow = { id = true, step = "create", items = 0, token = tokens[math.random(#tokens)] }
  return send("POST", "/v1/carts", flow, "")
end

function response(status, headers, body)
  if role == "browse" then return end
  local id = headers["x-correlation-id"] or headers["X-Correlation-Id"]
  local flow = id and flows[id]
  if not flow then return end
  flows[id] = nil
  if status >= 400 then
    failed = failed + 1
    return
  end
  local ok, nxt = pcall(next_step, flow, body)
  if not ok then
    failed = failed + 1
  elseif nxt then
    table.insert(ready, nxt)
  else
    transactions = transactions + 1
  end
end

function done(summary, latency, requests)
  local role = threads[1]:get("role")
  local completed, abandoned = 0, 0
  for _, thread in ipairs(threads) do
    completed = completed + (thread:get("transactions") or 0)
    abandoned = abandoned + (thread:get("failed") or 0)
  end
  if role == "browse" then completed = summary.requests end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"role":"%s","requests":%d,"duration_us":%d,"transactions":%d,"failed_transactions":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    role, summary.requests, summary.duration, completed, abandoned,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
