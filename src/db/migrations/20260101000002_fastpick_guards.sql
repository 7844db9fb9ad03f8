-- FastPick's additions on top of the original schema: the rules the API relies on are
-- guarded by the database too (changes 2, 3, 6 and 7 of "Compatibility with the original"
-- in the README).

-- An ADMIN role, for /api/v1/admin/** (change 6).
alter table tb_user drop constraint if exists tb_user_role_check;
alter table tb_user add constraint tb_user_role_check check (role in ('USER', 'ADMIN'));

-- A user holds a coupon at most once, whatever the issuing strategy (change 7).
-- Fails on a database that already holds duplicates: those must be resolved by hand first.
alter table tb_issued_coupon drop constraint if exists uk_issued_coupon_user_coupon;
alter table tb_issued_coupon
    add constraint uk_issued_coupon_user_coupon unique (user_id, coupon_id);

-- A coupon's period is never empty (change 3), and never more are issued than exist.
-- "not valid": checked for every new or changed row, without rejecting old rows.
alter table tb_coupon drop constraint if exists tb_coupon_period_check;
alter table tb_coupon add constraint tb_coupon_period_check check (start_at < end_at) not valid;
alter table tb_coupon drop constraint if exists tb_coupon_quantity_check;
alter table tb_coupon
    add constraint tb_coupon_quantity_check
    check (issued_quantity >= 0 and issued_quantity <= total_quantity) not valid;

-- A database the original evolved with ddl-auto=update still has NOT NULL columns that its
-- current code no longer fills on tb_coupon_keyword (schema drift); they would make
-- every keyword insert fail, so they become nullable.
do $$
declare
    stale text;
begin
    foreach stale in array array['is_sold_out', 'start_at', 'end_at', 'use_status'] loop
        if exists (select 1 from information_schema.columns
                   where table_schema = current_schema() and table_name = 'tb_coupon_keyword'
                     and column_name = stale) then
            execute format('alter table tb_coupon_keyword alter column %I drop not null', stale);
        end if;
    end loop;
end
$$;

-- Keywords are stored normalised (ASCII lowercase, once per coupon) for case-insensitive
-- prefix search (change 2).
update tb_coupon_keyword set keyword = lower(keyword) where keyword <> lower(keyword);
delete from tb_coupon_keyword k
using tb_coupon_keyword d
where k.coupon_id = d.coupon_id and k.keyword = d.keyword and k.id > d.id;

-- Prefix search on keywords in any database collation, newest coupon first.
create index if not exists idx_coupon_keyword_prefix
    on tb_coupon_keyword (keyword text_pattern_ops, coupon_id desc);
-- Keywords of one coupon, for the per-word checks of a multi-word search.
create index if not exists idx_coupon_keyword_coupon on tb_coupon_keyword (coupon_id);
-- My coupons: one user's rows, newest first.
create index if not exists idx_issued_coupon_user_created
    on tb_issued_coupon (user_id, created_at desc, id desc);
