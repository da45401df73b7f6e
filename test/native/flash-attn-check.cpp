// Compiled and run by patched-cpu.test.ts: the loaded CPU backend's flash attention against the
// same backend's reference path (ggml_backend_cpu_set_use_ref: llama.cpp's cell-by-cell loop, no
// tiles, no bitmaps), on masks of a KV cache shared by sequences: cells owned by random sequences
// or in runs, empty cells, causal positions, with ALiBi, softcap, sinks, 12 heads and grouped KV heads, over
// shapes that take each path (one row over a long cache, small steps by position, Q tiles).
// Prints one line per failed case and exits 1 if any failed.
#include "ggml.h"
#include "ggml-backend.h"
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

struct Case { int rows, n_kv, mode, n_seq; };

static std::vector<float> attend(ggml_backend_t backend, bool use_ref, const Case & c, int seed) {
    using set_use_ref_t = void (*)(ggml_backend_t, bool);
    auto * reg = ggml_backend_dev_backend_reg(ggml_backend_get_device(backend));
    ((set_use_ref_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_cpu_set_use_ref"))(backend, use_ref);

    // llama110m's 12 heads (in 8 groups of 2 for one row on 2 threads), or 4 query heads on 2 KV heads
    const int DK = 64, heads = c.mode % 2 ? 12 : 4, kv_heads = c.mode % 2 ? 12 : 2;
    ggml_init_params params = { 64u*1024*1024, nullptr, false };
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * q = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, DK, c.rows, heads);
    // llama.cpp's cache layout: a cell's heads side by side, viewed as [DK, n_kv, kv_heads]
    ggml_tensor * k = ggml_permute(ctx, ggml_new_tensor_3d(ctx, GGML_TYPE_F16, DK, kv_heads, c.n_kv), 0, 2, 1, 3);
    ggml_tensor * v = ggml_permute(ctx, ggml_new_tensor_3d(ctx, GGML_TYPE_F16, DK, kv_heads, c.n_kv), 0, 2, 1, 3);
    ggml_tensor * mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, c.n_kv, c.rows);

    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0, 1);
    for (int64_t i = 0; i < ggml_nelements(q); i++) ((float *) q->data)[i] = normal(rng);
    for (ggml_tensor * t : {k, v}) {
        for (int64_t i = 0; i < ggml_nelements(t); i++) ((ggml_fp16_t *) t->data)[i] = ggml_fp32_to_fp16(normal(rng));
    }
    // mode 0: each cell a random sequence's; 1: runs of 37 cells; 2: one contiguous run per sequence; 3: a third of the cells empty
    std::vector<int> cell_seq(c.n_kv), cell_pos(c.n_kv), seq_len(c.n_seq, 0);
    for (int i = 0; i < c.n_kv; i++) {
        const int s = c.mode == 0 ? rng() % c.n_seq : c.mode == 1 ? (i / 37) % c.n_seq : c.mode == 2 ? i * c.n_seq / c.n_kv : (rng() % 3 == 0 ? -1 : (int) (rng() % c.n_seq));
        cell_seq[i] = s;
        cell_pos[i] = s >= 0 ? seq_len[s]++ : 0;
    }
    for (int r = 0; r < c.rows; r++) {
        const int s = rng() % c.n_seq, pos = rng() % (seq_len[s] + 1);
        for (int i = 0; i < c.n_kv; i++) {
            const bool live = cell_seq[i] == s && cell_pos[i] <= pos;
            ((ggml_fp16_t *) mask->data)[r*c.n_kv + i] = ggml_fp32_to_fp16(live ? -0.1f*(i % 3) : -INFINITY);
        }
    }

    ggml_tensor * out = ggml_flash_attn_ext(ctx, q, k, v, mask, 1.0f/std::sqrt((float) DK), c.mode == 1 ? 8.0f : 0.0f, c.mode == 3 ? 20.0f : 0.0f);
    if (c.mode == 0) {
        ggml_tensor * sinks = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, heads);
        for (int h = 0; h < heads; h++) ((float *) sinks->data)[h] = 2*normal(rng);
        ggml_flash_attn_ext_add_sinks(out, sinks);
    }
    ggml_cgraph * graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, out);
    GGML_ASSERT(ggml_backend_graph_compute(backend, graph) == GGML_STATUS_SUCCESS);
    std::vector<float> result((float *) out->data, (float *) out->data + ggml_nelements(out));
    ggml_free(ctx);
    return result;
}

int main(int argc, char ** argv) {
    // argv[1]: the CPU backend file the addon loads (prebuilt builds); without it, the one linked in
    if (argc > 1 && !ggml_backend_load(argv[1])) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 2;
    }
    ggml_backend_t backend = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    auto * reg = ggml_backend_dev_backend_reg(ggml_backend_get_device(backend));
    ((ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads"))(backend, 2);

    int n_cases = 0, n_failed = 0;
    for (int rows : {1, 3, 32, 63, 64, 65, 200}) {
        for (int n_kv : {31, 100, 700, 2049}) {
            for (int mode = 0; mode < 4; mode++) {
                for (int n_seq : {1, 5, 32}) {
                    const Case c = { rows, n_kv, mode, n_seq };
                    const std::vector<float> patched = attend(backend, false, c, n_cases), reference = attend(backend, true, c, n_cases);
                    double max_diff = 0;
                    for (size_t i = 0; i < patched.size(); i++) {
                        const double d = std::fabs(patched[i] - reference[i]);
                        max_diff = std::isnan(d) ? INFINITY : std::max(max_diff, d);
                    }
                    n_cases++;
                    // the reference accumulates V in F16: its values are 1e-3 apart from F32's
                    if (max_diff > 2e-2) {
                        n_failed++;
                        printf("rows %d, %d cells, mode %d, %d sequences: max difference %g\n", rows, n_kv, mode, n_seq, max_diff);
                    }
                }
            }
        }
    }
    printf("%d cases, %d failed\n", n_cases, n_failed);
    ggml_backend_free(backend);
    return n_failed > 0;
}
