// Sequential signed division rounded by a named mode: y = round(n / d) for d >= 1, exactly golden
// golden.rounding.round_div (itx_divider on |n|, then itx_round). NW cycles from start to done; y holds until the
// next start.
module itx_round_divider #(
    parameter NW = 32,   // signed dividend width
    parameter DW = 32    // unsigned divisor width
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          start,   // accepted when not busy (the caller starts only when idle)
    input  wire [NW-1:0] n,       // signed
    input  wire [DW-1:0] d,       // unsigned, >= 1
    input  wire [1:0]    rnd,     // itx_round codes
    output wire          done,
    output wire [NW:0]   y        // signed
);
    reg           neg;
    reg  [DW-1:0] d_q;
    reg  [1:0]    rnd_q;
    wire [NW-1:0] q;
    wire [DW-1:0] r;
    always @(posedge clk) begin
        if (start) begin
            neg   <= n[NW-1];
            d_q   <= d;
            rnd_q <= rnd;
        end
    end
    /* verilator lint_off PINCONNECTEMPTY */
    itx_divider #(.NW(NW), .DW(DW)) u_div (.clk(clk), .rst(rst), .start(start), .n(n[NW-1] ? -n : n), .d(d),
                                           .ready(), .done(done), .q(q), .r(r));
    /* verilator lint_on PINCONNECTEMPTY */
    itx_round #(.QW(NW)) u_round (.q(q), .neg(neg), .gt({r, 1'b0} > {1'b0, d_q}), .eq({r, 1'b0} == {1'b0, d_q}),
                                  .nz(r != 0), .rnd(rnd_q), .y(y));
endmodule
