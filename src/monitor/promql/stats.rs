//! Numeric helpers shared by aggregations and `*_over_time` functions: compensated
//! summation, the mean that survives overflow, quantiles and linear regression, computed
//! the way Prometheus computes them so results match to the last bit where possible.

/// Adds `inc` to `sum` with Neumaier's compensation `c`; returns the new `(sum, c)`.
/// The compensation is dropped once the sum is infinite.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// A running mean: a compensated sum divided at the end, switching to an incremental mean
/// if the sum would overflow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mean {
    sum: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
}

impl Mean {
    /// Starts from the first value.
    pub fn new(first: f64) -> Self {
        Mean {
            sum: first,
            c: 0.0,
            mean: 0.0,
            count: 1.0,
            incremental: false,
        }
    }

    /// Adds a value.
    pub fn add(&mut self, f: f64) {
        self.count += 1.0;
        if !self.incremental {
            let (sum, c) = kahan_inc(f, self.sum, self.c);
            if !sum.is_infinite() {
                self.sum = sum;
                self.c = c;
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        let q = (self.count - 1.0) / self.count;
        let (mean, c) = kahan_inc(f / self.count, q * self.mean, q * self.c);
        self.mean = mean;
        self.c = c;
    }

    /// The mean so far.
    pub fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            self.sum / self.count + self.c / self.count
        }
    }
}

/// The `q`-quantile of `values` with linear interpolation between closest ranks (sorts
/// `values`); NaN for no values or a NaN `q`, -Inf below 0 and +Inf above 1.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as in Prometheus's value heap.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Population variance of `values` (Welford's method with compensated sums).
pub(super) fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for f in values {
        count += 1.0;
        let delta = f - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Least-squares slope and intercept of `samples` (ms, value), with x in seconds relative
/// to `intercept_time`.
pub(super) fn linear_regression(samples: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let init_y = samples[0].1;
    let mut const_y = true;
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    for (i, &(t, y)) in samples.iter().enumerate() {
        if const_y && i > 0 && y != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(y, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * y, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kahan_sum_keeps_small_terms_a_plain_sum_loses() {
        let (mut sum, mut c) = (0.0, 0.0);
        for f in [1e100, 1.0, -1e100, 1.0] {
            (sum, c) = kahan_inc(f, sum, c);
        }
        assert_eq!(sum + c, 2.0);
    }

    #[test]
    fn mean_switches_to_incremental_before_overflowing() {
        let mut m = Mean::new(f64::MAX);
        m.add(f64::MAX);
        assert_eq!(m.value(), f64::MAX);
        let mut m = Mean::new(1.0);
        m.add(2.0);
        m.add(6.0);
        assert_eq!(m.value(), 3.0);
    }

    #[test]
    fn quantile_interpolates_between_ranks_and_handles_edges() {
        assert_eq!(quantile(0.5, &mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(quantile(0.9, &mut [10.0, 0.0]), 9.0);
        assert_eq!(quantile(1.5, &mut [1.0]), f64::INFINITY);
        assert_eq!(quantile(-0.1, &mut [1.0]), f64::NEG_INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn variance_is_the_population_variance() {
        assert_eq!(
            variance([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].into_iter()),
            4.0
        );
    }

    #[test]
    fn linear_regression_fits_a_line() {
        let (slope, intercept) = linear_regression(&[(0, 1.0), (1000, 3.0), (2000, 5.0)], 0);
        assert_eq!((slope, intercept), (2.0, 1.0));
        assert_eq!(linear_regression(&[(0, 7.0), (1000, 7.0)], 0), (0.0, 7.0));
    }
}
