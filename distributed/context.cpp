#include "distributed/context.h"

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef PORTRAIT_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"

namespace portrait::dist {

namespace {

c10::intrusive_ptr<c10d::Backend> make_backend(const std::string& name, const c10::intrusive_ptr<c10d::Store>& store,
                                               int rank, int world, std::chrono::milliseconds timeout,
                                               int local_rank) {
  if (name == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create();
    opts->timeout = timeout;
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      const char* addr = std::getenv("MASTER_ADDR");
      std::string host = addr && *addr ? addr : "127.0.0.1";
      // Single-node jobs (the common case, and every test) talk over loopback; multi-node
      // jobs use the interface that resolves this machine's hostname.
      const char* lws = std::getenv("LOCAL_WORLD_SIZE");
      bool single_node = !lws || std::atoi(lws) >= world;
      opts->devices.push_back(single_node ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                          : c10d::ProcessGroupGloo::createDefaultDevice());
    }
    return c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store),
                                                      rank, world, opts);
  }
  if (name == "nccl") {
#ifdef PORTRAIT_WITH_NCCL
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank));
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store),
                                                      rank, world, opts);
#else
    throw ConfigError("dist.backend=nccl but this build has no NCCL support (torch without CUDA, "
                      "or nccl.h not found at configure time)");
#endif
  }
  throw ConfigError(fmt::format("unknown dist backend '{}'; allowed: auto, gloo, nccl", name));
}

}  // namespace

std::shared_ptr<DistContext> DistContext::create_with_store(c10::intrusive_ptr<c10d::Store> store, int rank,
                                                            int world, const DistParams& p, bool use_cuda,
                                                            int local_rank) {
  std::shared_ptr<DistContext> c(new DistContext());
  c->rank_ = rank;
  c->world_ = world;
  c->timeout_ = p.timeout;
  c->store_ = std::move(store);
  if (world > 1 && p.backend != "none") {
    c->backend_name_ = p.backend == "auto" ? (use_cuda ? "nccl" : "gloo") : p.backend;
    c->backend_ = make_backend(c->backend_name_, c->store_, rank, world, p.timeout, local_rank);
  }
  return c;
}

std::shared_ptr<DistContext> DistContext::create(const DistEnv& env, const DistParams& p, bool use_cuda) {
  if (!env.distributed()) {
    std::shared_ptr<DistContext> c(new DistContext());
    c->timeout_ = p.timeout;
    return c;
  }
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env.master_port);
  o.isServer = !env.use_agent_store && env.rank == 0;
  o.numWorkers = env.world_size;
  o.waitWorkers = false;  // barriers are explicit
  o.multiTenant = true;
  o.timeout = p.timeout;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(env.attempt_prefix(), tcp);
  PLOG_INFO("dist: rank {}/{} connected to {}:{} ({} store, attempt {})", env.rank, env.world_size,
            env.master_addr, env.master_port, env.use_agent_store ? "agent" : "rank-0",
            env.restart_count);
  auto c = create_with_store(prefixed, env.rank, env.world_size, p, use_cuda, env.local_rank);
  if (env.use_agent_store) {
    c->job_store_ = tcp;
    c->run_id_ = env.run_id;
  }
  return c;
}

DistContext::~DistContext() {
  try {
    shutdown();
  } catch (...) {
  }
}

void DistContext::shutdown() {
  if (shut_) return;
  shut_ = true;
  if (backend_) backend_->shutdown();
}

void DistContext::barrier(const std::string& name) {
  if (world_ <= 1) return;
  int seq = barrier_seq_[name]++;
  std::string key = fmt::format("barrier/{}/{}", name, seq);
  store_->add(key, 1);
  if (rank_ == 0) {
    auto start = std::chrono::steady_clock::now();
    while (store_->add(key, 0) < world_) {
      if (std::chrono::steady_clock::now() - start > timeout_) {
        throw std::runtime_error(fmt::format("barrier '{}' timed out after {} s: only {} of {} ranks arrived",
                                             name, timeout_.count() / 1000, store_->add(key, 0), world_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    store_->set(key + "/done", std::vector<uint8_t>{1});
  } else {
    store_->wait({key + "/done"}, timeout_);
  }
}

std::string DistContext::broadcast_string(const std::string& name, const std::string& value) {
  if (world_ <= 1) return value;
  int seq = barrier_seq_["bcast/" + name]++;
  std::string key = fmt::format("bcast/{}/{}", name, seq);
  if (rank_ == 0) {
    store_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
    return value;
  }
  store_->wait({key}, timeout_);
  auto v = store_->get(key);
  return std::string(v.begin(), v.end());
}

std::string DistContext::first_attempt_string(const std::string& name, const std::string& value) {
  if (world_ <= 1) return value;
  std::string v = value;
  if (rank_ == 0 && job_store_) {
    // compareSet on a missing key with an empty expected value sets it; otherwise it returns
    // what the first attempt stored.
    const std::string key = fmt::format("/portrait/{}/first_attempt/{}", run_id_, name);
    auto got = job_store_->compareSet(key, {}, std::vector<uint8_t>(value.begin(), value.end()));
    v.assign(got.begin(), got.end());
  }
  return broadcast_string(name, v);
}

void DistContext::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  if (world_ <= 1 || tensors.empty()) return;
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    backend_->allreduce(one)->wait(timeout_);
  }
}

at::Tensor DistContext::all_gather(const at::Tensor& t) {
  if (world_ <= 1) return t;
  auto in = t.contiguous();
  auto out = torch::empty({world_ * in.size(0)}, in.options()).view(-1);
  std::vector<int64_t> shape = in.sizes().vec();
  shape[0] *= world_;
  out = torch::empty(shape, in.options());
  std::vector<std::vector<at::Tensor>> outs(1);
  for (int r = 0; r < world_; ++r) outs[0].push_back(out.narrow(0, r * in.size(0), in.size(0)));
  std::vector<at::Tensor> ins{in};
  backend_->allgather(outs, ins)->wait(timeout_);
  return out;
}

void DistContext::broadcast(std::vector<at::Tensor>& tensors, int root) {
  if (world_ <= 1) return;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    backend_->broadcast(one, o)->wait(timeout_);
  }
}

namespace {

struct AllGatherWithGrad : torch::autograd::Function<AllGatherWithGrad> {
  static at::Tensor forward(torch::autograd::AutogradContext* actx, const at::Tensor& local,
                            std::shared_ptr<DistContext> ctx) {
    actx->saved_data["rows"] = local.size(0);
    actx->saved_data["rank"] = static_cast<int64_t>(ctx->rank());
    // The context rides along as a capsule-free raw pointer; it outlives the graph.
    actx->saved_data["ctx"] = reinterpret_cast<int64_t>(ctx.get());
    return ctx->all_gather(local.detach());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* actx,
                                                 torch::autograd::variable_list grads) {
    auto* ctx = reinterpret_cast<DistContext*>(actx->saved_data["ctx"].toInt());
    int64_t rows = actx->saved_data["rows"].toInt(), rank = actx->saved_data["rank"].toInt();
    std::vector<at::Tensor> g{grads[0].contiguous().clone()};
    ctx->all_reduce_sum(g);  // every rank's loss depends on every slice
    return {g[0].narrow(0, rank * rows, rows), at::Tensor()};
  }
};

}  // namespace

at::Tensor all_gather_with_grad(const std::shared_ptr<DistContext>& ctx, const at::Tensor& local) {
  if (!ctx || !ctx->distributed()) return local;
  return AllGatherWithGrad::apply(local, ctx);
}

}  // namespace portrait::dist
