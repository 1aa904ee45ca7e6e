// rowmm: C = A x B for a K x N weight matrix B held in the core, one row of A in, one row of C out.
// Third-party-style example RTL for the itx verification kit (not part of itx's hardware). MIT licence.
//
// Weights  w_*: KDIM beats load B, beat k = row k of B (lane j = B[k][j] in w_tdata[j*DW +: DW]); loading may
//               start again whenever the core is idle (row counter wraps after KDIM beats).
// Rows     s_*: one beat per row of A (lane k = A[i][k]); s_tlast is passed on to the row's result.
// Results  m_*: one beat per row of C (lane j = C[i][j], ACCW-bit two's complement; the sums wrap).
// One multiply-accumulate per lane per cycle, so a row takes KDIM cycles. Reset: synchronous, active low.
module rowmm #(
    parameter DW   = 8,    // signed operand width
    parameter ACCW = 32,   // accumulator width
    parameter KDIM = 4,    // columns of A = rows of B
    parameter NDIM = 4     // columns of B and C
) (
    input  wire                 aclk,
    input  wire                 aresetn,
    input  wire                 w_tvalid,
    output wire                 w_tready,
    input  wire [NDIM*DW-1:0]   w_tdata,
    input  wire                 s_tvalid,
    output wire                 s_tready,
    input  wire [KDIM*DW-1:0]   s_tdata,
    input  wire                 s_tlast,
    output reg                  m_tvalid,
    input  wire                 m_tready,
    output wire [NDIM*ACCW-1:0] m_tdata,
    output reg                  m_tlast
);
    localparam KW = (KDIM > 1) ? $clog2(KDIM) : 1;

    reg               busy;    // a row is being accumulated
    reg [KW-1:0]      k;       // its MAC step
    reg [KW-1:0]      wrow;    // row of B the next weight beat writes
    reg [KDIM*DW-1:0] arow;

    wire idle = !busy && !m_tvalid;
    assign w_tready = idle;
    assign s_tready = idle && !w_tvalid;   // weights first: a row never sees a half-loaded B
    wire w_fire = w_tvalid && w_tready;
    wire s_fire = s_tvalid && s_tready;
    wire signed [DW-1:0] a_k = arow[k*DW +: DW];

    always @(posedge aclk) begin
        if (!aresetn) begin
            busy     <= 1'b0;
            m_tvalid <= 1'b0;
            m_tlast  <= 1'b0;
            k        <= 0;
            wrow     <= 0;
        end else begin
            if (w_fire)
                wrow <= (wrow == KDIM - 1) ? 0 : wrow + 1'b1;
            if (s_fire) begin
                arow    <= s_tdata;
                m_tlast <= s_tlast;
                busy    <= 1'b1;
                k       <= 0;
            end else if (busy) begin
                k <= k + 1'b1;
                if (k == KDIM - 1) begin
                    busy     <= 1'b0;
                    m_tvalid <= 1'b1;
                end
            end
            if (m_tvalid && m_tready)
                m_tvalid <= 1'b0;
        end
    end

    genvar j;
    generate
        for (j = 0; j < NDIM; j = j + 1) begin : lane
            reg signed [DW-1:0]   bcol [0:KDIM-1];   // column j of B
            reg signed [ACCW-1:0] acc;
            always @(posedge aclk) begin
                if (w_fire)
                    bcol[wrow] <= w_tdata[j*DW +: DW];
                if (s_fire)
                    acc <= 0;
                else if (busy)
                    acc <= acc + a_k * bcol[k];   // signed, sized to ACCW: wraps like the golden "wrap"
            end
            assign m_tdata[j*ACCW +: ACCW] = acc;
        end
    endgenerate
endmodule
