-- Search at 1,000,000 coupons (src/app/coupons/query.rs): the list's filters by period and
-- stock get index access, so READY and CLOSED, which match few coupons, never scan the table.
create index if not exists idx_coupon_start on tb_coupon (start_at) where use_status = 'AVAILABLE';
create index if not exists idx_coupon_end on tb_coupon (end_at) where use_status = 'AVAILABLE';
-- Sold out. A boolean expression index: besides the access path, ANALYZE keeps statistics of
-- the expression, which the planner reads for "(issued_quantity >= total_quantity) is true"
-- (without them it assumes a third of the table is sold out and picks the wrong plans).
create index if not exists idx_coupon_exhausted on tb_coupon ((issued_quantity >= total_quantity));
analyze tb_coupon;
