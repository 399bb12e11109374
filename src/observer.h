/* Observers watch a tensor's values and keep a range [min, max] from which qparams follow
 * (docs/QUANTIZATION.md §4). They only ever change s and z, never the values themselves.
 *
 *   minmax      running min / max over everything seen (PTQ calibration)
 *   ema         moving average: the first batch sets the range, then min += 0.01 (bmin - min),
 *               max likewise (QAT: follows the activations as the weights move)
 *   percentile  per batch, the 0.01% and 99.99% quantiles instead of min / max, averaged over
 *               batches: one outlier no longer stretches the scale for everyone
 *
 * A frozen observer ignores what it is shown. Evaluation never calls observe (fake_quant.h). */
#ifndef TQ_OBSERVER_H
#define TQ_OBSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"
#include "status.h"

typedef enum { TQ_OBS_MINMAX = 0, TQ_OBS_EMA = 1, TQ_OBS_PERCENTILE = 2 } tq_obs_kind;

typedef struct {
    tq_obs_kind kind;
    float min, max;        /* the current range; meaningless until n_seen > 0 */
    int64_t n_seen;        /* batches observed */
    float momentum;        /* ema: 0.01 */
    float percentile;      /* percentile: 99.99 */
    int frozen;
    float *scratch;        /* percentile: a sorted copy of the batch, owned */
    size_t scratch_cap;
} tq_observer;

void tq_observer_init(tq_observer *o, tq_obs_kind kind);
void tq_observer_free(tq_observer *o);   /* NULL-safe */
/* Fold n values into the range (no-op when frozen). TQ_E_NUMERIC on NaN/Inf, TQ_E_NOMEM. */
tq_status tq_observer_observe(tq_observer *o, const float *x, size_t n);
/* Affine int8-style qparams of the current range. */
tq_status tq_observer_qparams(const tq_observer *o, int32_t qmin, int32_t qmax, tq_qparams *out);
/* "minmax", "ema", "percentile" -> kind; -1 if unknown. */
int tq_obs_kind_parse(const char *name);
const char *tq_obs_kind_name(tq_obs_kind k);

#endif
