package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
)

var (
	white  = color.RGBA{255, 255, 255, 255}
	black  = color.RGBA{30, 30, 30, 255}
	grey   = color.RGBA{200, 200, 200, 255}
	dark   = color.RGBA{110, 110, 110, 255}
	colors = map[string]color.RGBA{
		"pgbouncer": {66, 133, 244, 255},
		"pgguard":   {240, 130, 30, 255},
		"direct":    {120, 120, 120, 255},
	}
)

// writeChart draws two panels of grouped bars, one group per configuration:
// TPS relative to direct, and proxy CPU seconds per 10,000 transactions.
func writeChart(path string, o *options, sums []summary) error {
	var proxies []string
	for _, t := range o.targets {
		if t != "direct" {
			proxies = append(proxies, t)
		}
	}
	const width, height = 1400, 960
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), white)
	if len(sums) == 0 || len(proxies) == 0 {
		return savePNG(path, img)
	}

	text(img, 20, 14, "PGBENCH THROUGH PGGUARD AND PGBOUNCER (SESSION MODE)", 3, black)
	// Legend.
	lx := width - 20 - len(proxies)*170
	for i, p := range proxies {
		x := lx + i*170
		fill(img, image.Rect(x, 16, x+18, 34), colors[p])
		text(img, x+26, 18, p, 2, black)
	}

	ratio := func(s summary, t string) float64 { return s.Ratio[t] * 100 }
	cpu := func(s summary, t string) float64 { return s.CPU10k[t] }
	maxRatio := 100.0
	maxCPU := 0.0
	for _, s := range sums {
		for _, p := range proxies {
			maxRatio = math.Max(maxRatio, ratio(s, p))
			maxCPU = math.Max(maxCPU, cpu(s, p))
		}
	}
	panel(img, image.Rect(90, 80, width-20, 440), "TPS AS % OF DIRECT (MEDIAN OVER ROUNDS)", sums, proxies,
		ratio, niceMax(maxRatio*1.08), func(v float64) string { return fmt.Sprintf("%.0f", v) }, 100)
	panel(img, image.Rect(90, 560, width-20, 880), "PROXY CPU SECONDS PER 10,000 TRANSACTIONS", sums, proxies,
		cpu, niceMax(maxCPU*1.1), func(v float64) string { return fmt.Sprintf("%.2f", v) }, -1)

	// Group labels under each panel.
	for _, top := range []int{440, 880} {
		gw := float64(width-20-90) / float64(len(sums))
		for i, s := range sums {
			cx := 90 + int(gw*(float64(i)+0.5))
			script := strings.ToUpper(s.Config.Script)
			if script == "SELECT-ONLY" {
				script = "SELECT"
			}
			lines := []string{script, strings.ToUpper(s.Config.Mode), fmt.Sprintf("C%d", s.Config.Clients)}
			if s.Config.Rate > 0 {
				lines[2] += fmt.Sprintf(" R%d", s.Config.Rate)
			}
			if s.Config.TLS != "" {
				lines[1] += " TLS " + strings.ToUpper(s.Config.TLS)
			}
			if top == 440 {
				lines = append(lines, fmt.Sprintf("%.0f TPS", s.TPS["direct"]))
			}
			for j, l := range lines {
				text(img, cx-len(l)*6/2, top+8+j*11, l, 1, black)
			}
		}
	}
	text(img, 20, height-24, "LAST LINE UNDER THE TOP PANEL: DIRECT TPS. DASHED: 100% (DIRECT).", 1, dark)
	return savePNG(path, img)
}

// panel draws one bar chart in r with value labels; ref >= 0 draws a dashed
// reference line at that value.
func panel(img *image.RGBA, r image.Rectangle, title string, sums []summary, proxies []string,
	value func(summary, string) float64, maxV float64, label func(float64) string, ref float64) {
	text(img, r.Min.X, r.Min.Y-22, title, 2, black)
	if maxV <= 0 {
		maxV = 1
	}
	y := func(v float64) int { return r.Max.Y - int(v/maxV*float64(r.Dy())) }
	// Grid and axis labels.
	for i := 0; i <= 5; i++ {
		v := maxV * float64(i) / 5
		yy := y(v)
		hline(img, r.Min.X, r.Max.X, yy, grey)
		l := label(v)
		text(img, r.Min.X-8-len(l)*6, yy-3, l, 1, black)
	}
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, black)
	hline(img, r.Min.X, r.Max.X, r.Max.Y, black)
	if ref >= 0 && ref <= maxV {
		for x := r.Min.X; x < r.Max.X; x += 8 {
			hline(img, x, x+4, y(ref), black)
		}
	}
	gw := float64(r.Dx()) / float64(len(sums))
	bw := int(gw * 0.7 / float64(len(proxies)))
	for i, s := range sums {
		x0 := r.Min.X + int(gw*float64(i)+gw*0.15)
		for j, p := range proxies {
			v := value(s, p)
			bx := x0 + j*bw
			fill(img, image.Rect(bx+1, y(v), bx+bw-1, r.Max.Y), colors[p])
			l := label(v)
			text(img, bx+bw/2-len(l)*6/2, y(v)-10, l, 1, black)
		}
	}
}

// niceMax rounds v up to a round number that divides into five round steps.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) { fill(img, image.Rect(x0, y, x1, y+1), c) }
func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) { fill(img, image.Rect(x, y0, x+1, y1), c) }

// text draws s in the 5x7 font, each pixel scale x scale, top left at x, y.
func text(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for _, ch := range strings.ToUpper(s) {
		g, ok := font[ch]
		if !ok {
			g = font['?']
		}
		for row, bits := range g {
			for col := 0; col < 5; col++ {
				if bits[col] == '#' {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
				}
			}
		}
		x += 6 * scale
	}
}

func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
