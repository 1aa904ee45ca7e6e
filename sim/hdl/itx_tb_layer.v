// Simulation-only layer runner: one GEMM of a model through itx_gemm_ctrl, and (with +rq) its accumulator
// rows straight into itx_requant, so the array's INT32 results and the INT8 tensor the next layer consumes
// both come out. Everything is $readmemh-preloaded; no per-cycle host interaction (Icarus or Verilator --binary).
// Plusargs: +a +b=FILE (beat files, see itx_tb_source) +c=FILE (C out) +m +k +n; with +rq: +mul +sh +mul2 +sh2 +bias +rmul +rsh
// +div=FILE (per-element factors, M x N row-major) +y=FILE (Y out) +divide=0|1 +rnd=CODE +mmode +rmode=CODE
// (itx_requant stage modes).
// Prints "ITX_STATS cycles=... ovf=... first_ovf=..." when done, "ITX_ERROR ..." on failure.
`timescale 1ns / 1ps
module itx_tb_layer #(
    parameter ROWS     = 8,
    parameter COLS     = 8,
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,
    parameter MUL_BITS = 31,
    parameter SH_BITS  = 6,
    parameter DIM_BITS = 16,
    parameter AMAX     = 1024,    // memory sizes: beat words of A and B (itx_tb_source), elements of C, Y and
                                  // factors (M*N)
    parameter BMAX     = 1024,
    parameter CMAX     = 1024
) ();
    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg rst = 1'b1;

    reg [ACC_BITS-1:0] cmem [0:CMAX-1];
    reg [MUL_BITS-1:0] mulm [0:CMAX-1];
    reg [SH_BITS-1:0]  shm  [0:CMAX-1];
    reg [MUL_BITS-1:0] mul2m[0:CMAX-1];
    reg [SH_BITS-1:0]  sh2m [0:CMAX-1];
    reg [ACC_BITS-1:0] biasm[0:CMAX-1];
    reg [MUL_BITS-1:0] rmulm[0:CMAX-1];
    reg [SH_BITS-1:0]  rshm [0:CMAX-1];
    reg [ACC_BITS-1:0] divm [0:CMAX-1];
    reg [IN_BITS-1:0]  ymem [0:CMAX-1];
    reg [8*4096-1:0]   fname;
    integer m, k, n, rq, divide, rnd, mmode, rmode, fd, i, cycles, ovf, first_ovf;

    // ---- DUT chain: controller -> requant --------------------------------------------------------------
    wire                     in_valid, in_ready, c_valid, c_last, rq_ready, y_valid, y_last;
    wire [ROWS*IN_BITS-1:0]  in_a;
    wire [COLS*IN_BITS-1:0]  in_b;
    wire [COLS*ACC_BITS-1:0] c_data;
    wire [COLS*IN_BITS-1:0]  y_data;
    wire [COLS-1:0]          y_ovf;
    reg  [COLS*MUL_BITS-1:0] f_mul, f_mul2, f_rmul;
    reg  [COLS*SH_BITS-1:0]  f_sh, f_sh2, f_rsh;
    reg  [COLS*ACC_BITS-1:0] f_bias, f_div;
    wire c_ready = rq == 0 || rq_ready;
    wire c_fire  = c_valid && c_ready;

    itx_tb_source #(.ROWS(ROWS), .COLS(COLS), .IN_BITS(IN_BITS), .AMAX(AMAX), .BMAX(BMAX)) src (
        .clk(clk), .rst(rst), .hold(1'b0), .in_ready(in_ready), .in_valid(in_valid), .in_a(in_a), .in_b(in_b));
    itx_gemm_ctrl #(.ROWS(ROWS), .COLS(COLS), .IN_BITS(IN_BITS), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE),
                    .DIM_BITS(DIM_BITS)) u_ctrl (
        .clk(clk), .rst(rst), .cfg_m(m[DIM_BITS-1:0]), .cfg_k(k[DIM_BITS-1:0]), .cfg_n(n[DIM_BITS-1:0]),
        .in_valid(in_valid), .in_ready(in_ready), .in_a(in_a), .in_b(in_b),
        .out_valid(c_valid), .out_ready(c_ready), .out_data(c_data), .out_last(c_last));
    itx_requant #(.LANES(COLS), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE), .OUT_BITS(IN_BITS), .MUL_BITS(MUL_BITS),
                  .SH_BITS(SH_BITS)) u_rq (
        .clk(clk), .rst(rst), .in_valid(c_valid && rq != 0), .in_ready(rq_ready), .in_data(c_data),
        .in_mul(f_mul), .in_sh(f_sh), .in_mul2(f_mul2), .in_sh2(f_sh2), .in_bias(f_bias), .in_rmul(f_rmul), .in_rsh(f_rsh), .in_div(f_div),
        .in_divide(divide[0]), .in_rnd(rnd[1:0]), .in_mmode(mmode[1:0]), .in_rmode(rmode[1:0]), .in_last(c_last),
        .out_valid(y_valid), .out_ready(1'b1), .out_data(y_data), .out_ovf(y_ovf), .out_last(y_last));

    task need(input [8*8-1:0] name, input integer ok);
        if (!ok) begin
            $display("ITX_ERROR missing plusarg +%0s", name);
            $finish;
        end
    endtask

    initial begin
        need("m", $value$plusargs("m=%d", m));
        need("k", $value$plusargs("k=%d", k));
        need("n", $value$plusargs("n=%d", n));
        if (m * n > CMAX) begin
            $display("ITX_ERROR GEMM %0dx%0dx%0d exceeds the C memory built in (CMAX)", m, k, n);
            $finish;
        end
        if (!$value$plusargs("rq=%d", rq)) rq = 0;
        if (rq != 0) begin
            need("mul", $value$plusargs("mul=%s", fname)); $readmemh(fname, mulm, 0, m * n - 1);
            need("sh", $value$plusargs("sh=%s", fname)); $readmemh(fname, shm, 0, m * n - 1);
            need("mul2", $value$plusargs("mul2=%s", fname)); $readmemh(fname, mul2m, 0, m * n - 1);
            need("sh2", $value$plusargs("sh2=%s", fname)); $readmemh(fname, sh2m, 0, m * n - 1);
            need("bias", $value$plusargs("bias=%s", fname)); $readmemh(fname, biasm, 0, m * n - 1);
            need("rmul", $value$plusargs("rmul=%s", fname)); $readmemh(fname, rmulm, 0, m * n - 1);
            need("rsh", $value$plusargs("rsh=%s", fname)); $readmemh(fname, rshm, 0, m * n - 1);
            need("div", $value$plusargs("div=%s", fname)); $readmemh(fname, divm, 0, m * n - 1);
            need("divide", $value$plusargs("divide=%d", divide));
            need("rnd", $value$plusargs("rnd=%d", rnd));
            need("mmode", $value$plusargs("mmode=%d", mmode));
            need("rmode", $value$plusargs("rmode=%d", rmode));
        end else begin
            divide = 0;
            rnd = 0;
            mmode = 0;
            rmode = 0;
        end
        cycles = 0;
        ovf = 0;
        first_ovf = -1;
        repeat (2) @(posedge clk);
        rst <= 1'b0;
    end

    // ---- output rows: C at the accumulators (tile ctm, ctn, row crow), Y after requant (ytm, ytn, yrow) --
    integer ctm = 0, ctn = 0, crow = 0, ytm = 0, ytn = 0, yrow = 0, idx;
    task advance(inout integer t_m, inout integer t_n, inout integer r);
        begin
            r = r + 1;
            if (r == ROWS || t_m * ROWS + r == m) begin
                r = 0;
                t_n = t_n + 1;
                if (t_n * COLS >= n) begin
                    t_n = 0;
                    t_m = t_m + 1;
                end
            end
        end
    endtask

    // factors of the C row offered next to the requant unit (padding lanes >= N: any, result dropped); loaded
    // on the clock edge that advances the row (not @*, which would watch every word of the factor memories)
    integer fl, fidx;
    task load_factors;
        for (fl = 0; fl < COLS; fl = fl + 1) begin
            fidx = ctn * COLS + fl < n ? (ctm * ROWS + crow) * n + ctn * COLS + fl : 0;
            f_mul[fl*MUL_BITS +: MUL_BITS]  <= mulm[fidx];
            f_sh[fl*SH_BITS +: SH_BITS]     <= shm[fidx];
            f_mul2[fl*MUL_BITS +: MUL_BITS] <= mul2m[fidx];
            f_sh2[fl*SH_BITS +: SH_BITS]    <= sh2m[fidx];
            f_bias[fl*ACC_BITS +: ACC_BITS] <= biasm[fidx];
            f_rmul[fl*MUL_BITS +: MUL_BITS] <= rmulm[fidx];
            f_rsh[fl*SH_BITS +: SH_BITS]    <= rshm[fidx];
            f_div[fl*ACC_BITS +: ACC_BITS]  <= divm[fidx];
        end
    endtask

    integer ol;
    always @(posedge clk) begin
        if (!rst) begin
            cycles = cycles + 1;
            if (cycles == 1 && rq != 0) load_factors;
            if (c_fire) begin
                for (ol = 0; ol < COLS && ctn * COLS + ol < n; ol = ol + 1)
                    cmem[(ctm * ROWS + crow) * n + ctn * COLS + ol] = c_data[ol*ACC_BITS +: ACC_BITS];
                advance(ctm, ctn, crow);
                if (rq != 0) load_factors;
                if (c_last != (ctm * ROWS >= m)) begin
                    $display("ITX_ERROR accumulator out_last=%0d at tile row %0d", c_last, crow);
                    $finish;
                end
            end
            if (y_valid) begin
                for (ol = 0; ol < COLS && ytn * COLS + ol < n; ol = ol + 1) begin
                    idx = (ytm * ROWS + yrow) * n + ytn * COLS + ol;
                    ymem[idx] = y_data[ol*IN_BITS +: IN_BITS];
                    if (y_ovf[ol]) begin
                        ovf = ovf + 1;
                        if (first_ovf < 0) first_ovf = idx;
                    end
                end
                advance(ytm, ytn, yrow);
            end
            if ((rq == 0 && c_fire && c_last) || (rq != 0 && y_valid && y_last)) begin
                if ($value$plusargs("c=%s", fname)) begin
                    fd = $fopen(fname, "w");
                    for (i = 0; i < m * n; i = i + 1) $fdisplay(fd, "%h", cmem[i]);
                    $fclose(fd);
                end
                if (rq != 0 && $value$plusargs("y=%s", fname)) begin
                    fd = $fopen(fname, "w");
                    for (i = 0; i < m * n; i = i + 1) $fdisplay(fd, "%h", ymem[i]);
                    $fclose(fd);
                end
                $display("ITX_STATS cycles=%0d ovf=%0d first_ovf=%0d", cycles, ovf, first_ovf);
                $finish;
            end
        end
    end
endmodule
